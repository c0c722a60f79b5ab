"""One seam from a sample to model inputs: evaluation (hf backend), GRPO prompts and the SFT collator encode the
same question and clip into identical token ids and pixels."""

from __future__ import annotations

import pytest
import torch

from reasonkit.plugins import get_benchmark


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from reasonkit.backends.hf import HFBackend

    return HFBackend(str(tiny_model_dir), device="cpu")


def one_question(synth_data_dir):
    from reasonkit.media import load_frames

    bench = get_benchmark("synthphys")
    sample = bench.load(synth_data_dir)[0]
    return sample, load_frames(sample.video, bench.frame_spec)


def test_eval_grpo_and_sft_encode_a_sample_identically(backend, synth_data_dir):
    from reasonkit.config import EvalConfig
    from reasonkit.evaluate.runner import _request
    from reasonkit.prompts import build_messages
    from reasonkit.train.collate import SFTCollator
    from reasonkit.train.grpo.data import encode_prompt

    sample, frames = one_question(synth_data_dir)
    cfg = EvalConfig(datasets=["synthphys"])
    evaluated = backend.prepare([_request(sample, frames, cfg)])
    grpo = encode_prompt(backend.processor, build_messages(sample, "reasoning"), frames)
    for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw"):
        assert torch.equal(evaluated[key].cpu(), grpo[key]), key

    # SFT: the same system + user turns followed by an answer; its prompt part is eval's prompt token for token
    messages = build_messages(sample, "reasoning")
    row = {"video": sample.video, "conversations": [
        {"role": m["role"], "content": m["content"]} for m in messages] + [
        {"role": "assistant", "content": "<think>x</think>\n\n<answer>A</answer>"}]}
    collator = SFTCollator(backend.processor, max_length=4096, system_prompt=None)
    sft = collator.encode_one(row, frames)
    prompt = evaluated["input_ids"][0].cpu()
    assert torch.equal(sft["input_ids"][0, : len(prompt)], prompt)
    assert (sft["labels"][0, : len(prompt)] == -100).all() and (sft["labels"][0, len(prompt):] != -100).any()
    assert torch.equal(sft["pixel_values_videos"], grpo["pixel_values_videos"])


def test_frames_reach_the_model_at_the_recorded_size(backend, synth_data_dir):
    from reasonkit.encoding import model_inputs
    from reasonkit.prompts import build_messages

    sample, frames = one_question(synth_data_dir)
    enc = model_inputs(backend.processor, [build_messages(sample, "letter")], [frames])
    t, h, w = enc["video_grid_thw"][0].tolist()
    patch = backend.processor.video_processor.patch_size
    assert (t * 2, h * patch, w * patch) == frames.array.shape[:3]  # no re-sampling, no re-sizing


def test_hf_backend_applies_each_requests_own_sampling_settings(backend):
    """One batch mixing greedy and sampled requests: each is generated with its own settings (transformers'
    generate takes one setting per call, so the backend groups them), results in request order."""
    from reasonkit.types import GenRequest

    def request(i, temperature):
        return GenRequest(messages=[{"role": "user", "content": [{"type": "text", "text": f"{i} a ball moves"}]}],
                          max_tokens=6, temperature=temperature, seed=3)

    mixed = backend.generate([request(0, 0.0), request(1, 5.0), request(2, 0.0)])
    greedy = backend.generate([request(0, 0.0), request(2, 0.0)])
    assert [mixed[0].token_ids, mixed[2].token_ids] == [greedy[0].token_ids, greedy[1].token_ids]
    hot = backend.generate([request(1, 5.0)])
    assert mixed[1].token_ids == hot[0].token_ids
    assert mixed[1].token_ids != backend.generate([request(1, 0.0)])[0].token_ids
