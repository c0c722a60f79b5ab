"""Shared fixtures. Heavy artefacts (tiny model, synthetic data) are built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def fresh_plugins(monkeypatch):
    """A fresh plugin manager for the test; the process-wide one is restored afterwards."""
    from reasonkit import plugins

    saved = plugins._PLUGINS
    plugins.reset_plugins(None)
    yield plugins
    plugins.reset_plugins(saved)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-init tiny Qwen2.5-VL folder (tokenizer + processor + safetensors), built once per session."""
    from reasonkit.synth.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen25vl", size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory):
    """A random-init tiny Qwen3-VL (the Cosmos-Reason2 architecture), built once per session."""
    from reasonkit.synth.qwen3_vl import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen3vl", size="tiny", seed=0)


@pytest.fixture(scope="session")
def synth_data_dir(tmp_path_factory):
    """A data dir holding the `synthphys` benchmark (20 questions, 4 per task) and its train split (40 rows) in the
    layout documented in reasonkit.synth.benchmark."""
    from reasonkit.synth.benchmark import build_benchmark

    root = tmp_path_factory.mktemp("synth-data")
    build_benchmark(root, name="synthphys", n=20, train_n=40, seed=0)
    return root


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir):
    """ONE vLLM engine per test session (engine start is ~30 s on CPU); shared by eval and GRPO tests;
    a test that needs the original weights pushes them first."""
    pytest.importorskip("vllm")
    from reasonkit.backends.vllm import VLLMBackend

    engine = VLLMBackend(str(tiny_model_dir), dtype="float32", max_length=1024, max_num_seqs=16)
    yield engine
    engine.close()
