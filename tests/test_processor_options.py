"""Every place that hands frames to the processor (eval's hf backend, the SFT collator, GRPO prompts) passes the
video options explicitly: transformers' `cap_pixels_per_frame` deprecation warning is never printed, and the
frames the sampler sized reach the model at that size."""

from __future__ import annotations

import logging

import pytest
from helpers import write_clip

from reasonkit.types import FrameSpec, Sample


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_seen():
    """transformers' warnings (its root logger does not propagate to pytest's), with `warning_once`'s memory
    cleared so a warning already printed earlier in the session would show again."""
    from transformers.utils import logging as hf_logging

    logging.Logger.warning_once.cache_clear()
    handler = Records()
    root = hf_logging.get_logger()
    root.addHandler(handler)
    yield handler.messages
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from reasonkit.backends.hf import HFBackend

    return HFBackend(str(tiny_model_dir), device="cpu")


def test_no_cap_pixels_warning_and_frames_keep_their_size(backend, tmp_path, warnings_seen):
    from reasonkit.config import EvalConfig
    from reasonkit.evaluate.runner import _request
    from reasonkit.media import load_frames
    from reasonkit.prompts import build_messages
    from reasonkit.train.collate import SFTCollator
    from reasonkit.train.grpo.data import encode_prompt

    processor = backend.processor
    clip = write_clip(tmp_path / "c.mp4", frames=16, size=(64, 96))
    frames = load_frames(clip, FrameSpec(fps=4, min_frames=4, max_frames=8, min_pixels=28 * 28,
                                         max_pixels=4 * 28 * 28, size_factor=28))
    sample = Sample(id="c#0", dataset="d", video=clip, question="Moving?", choices={"A": "yes", "B": "no"},
                    answer="A")
    messages = build_messages(sample, "reasoning")
    encoded = {
        "eval": backend.prepare([_request(sample, frames, EvalConfig(datasets=["d"]))]),
        "grpo": encode_prompt(processor, messages, frames),
        "sft": SFTCollator(processor, max_length=4096).encode_one(
            {"video": clip, "conversations": [{"role": "user", "content": "Moving?"},
                                              {"role": "assistant", "content": "<answer>A</answer>"}]}, frames),
    }
    assert not [m for m in warnings_seen if "cap_pixels_per_frame" in m], warnings_seen
    patch = processor.video_processor.patch_size
    t, h, w, _ = frames.array.shape
    for path, enc in encoded.items():
        assert enc["video_grid_thw"][0].tolist() == [t // 2, h // patch, w // patch], path

    # The check above can see the warning: a bare processor call prints it.
    processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[frames.array],
              video_metadata=[frames.metadata()], do_sample_frames=False, return_tensors="pt")
    assert [m for m in warnings_seen if "cap_pixels_per_frame" in m]
