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
