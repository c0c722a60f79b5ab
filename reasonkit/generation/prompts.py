"""Prompts as the engine takes them (one tokenised conversation, its clips' pixels and a key per clip), and the
left-padded batch tensors ``generate`` would see for the same prompts.

Prompts are encoded one at a time (through the shared seam :func:`reasonkit.encoding.model_inputs`, so the tokens
and pixels are the ones every backend and trainer uses) and padded by the engine, which groups them by length
first; the padded tensors equal the processor's own left padding of the same batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(eq=False)
class VideoInput:
    """One clip: its processor pixels, grid, and the key its vision features are cached under."""

    pixel_values: torch.Tensor  # [patches, channels x patch volume]
    grid_thw: torch.Tensor  # [3] (temporal, height, width patches)
    key: str
    second_per_grid: float | None = None  # Qwen2.5-VL's temporal rope spacing

    @property
    def n_tokens(self) -> int:
        return int(self.grid_thw.prod())


@dataclass(eq=False)
class EncodedPrompt:
    input_ids: torch.Tensor  # [P] long
    mm_token_type_ids: torch.Tensor | None = None  # [P]
    videos: list[VideoInput] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def pixel_key(pixels: torch.Tensor, grid: torch.Tensor) -> str:
    """A content key for a clip's processor pixels (when the caller has no cheaper identity for the clip)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(tuple(grid.tolist())).encode())
    h.update(pixels.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def frames_key(frames) -> str:
    """A content key for decoded frames (uint8: 4x fewer bytes to hash than the processor's float pixels); the
    processor turns equal frames into equal pixels, so this identifies the vision features too."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    array = np.ascontiguousarray(frames.array)
    h.update(f"{array.shape}|{array.dtype}".encode())
    h.update(array.data)
    return h.hexdigest()


def encode(processor, messages: list[dict[str, Any]], frames=None, *, key: str | None = None) -> EncodedPrompt:
    """One conversation (and its clip) through the shared encoding seam."""
    from reasonkit.encoding import model_inputs

    out = model_inputs(processor, [messages], [frames])
    videos = []
    if "pixel_values_videos" in out:
        grids = out["video_grid_thw"]
        sizes = grids.prod(-1).tolist()
        seconds = out.get("second_per_grid_ts")
        for i, (pixels, grid) in enumerate(zip(torch.split(out["pixel_values_videos"], sizes), grids)):
            videos.append(VideoInput(pixels, grid, f"{key}#{i}" if key else pixel_key(pixels, grid),
                                     float(seconds[i]) if seconds is not None else None))
    if "pixel_values" in out:
        raise NotImplementedError("the generation engine takes video and text prompts, not images")
    types = out.get("mm_token_type_ids")
    return EncodedPrompt(out["input_ids"][0], types[0] if types is not None else None, videos)


def padded_batch(prompts: list[EncodedPrompt], pad_id: int) -> dict[str, Any]:
    """Left-padded ``input_ids``/``attention_mask``/``mm_token_type_ids`` and the clips' grids, in the layout the
    processor returns for the batch (what ``get_rope_index`` takes)."""
    width = max(p.length for p in prompts)
    n = len(prompts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long) if any(p.mm_token_type_ids is not None for p in prompts) \
        else None
    for row, p in enumerate(prompts):
        ids[row, width - p.length:] = p.input_ids
        mask[row, width - p.length:] = 1
        if types is not None and p.mm_token_type_ids is not None:
            types[row, width - p.length:] = p.mm_token_type_ids
    batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["mm_token_type_ids"] = types
    videos = [v for p in prompts for v in p.videos]
    if videos:
        batch["video_grid_thw"] = torch.stack([v.grid_thw for v in videos])
        if all(v.second_per_grid is not None for v in videos):
            batch["second_per_grid_ts"] = torch.tensor([v.second_per_grid for v in videos])
    return batch
