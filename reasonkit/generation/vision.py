"""Vision once: a clip's vision-tower output is computed once and reused by every prompt that shows that clip.

Keys are the clip's content key (:class:`reasonkit.generation.prompts.VideoInput.key`: a hash of its frames or
pixels plus its grid), so every question on a video, every seed, every retry and all G completions of a GRPO group
share one tower pass. Features stay on the device, least recently used evicted beyond ``max_bytes``.

The features are only valid for the weights that made them: whoever changes the vision tower's weights (a GRPO
step that trains it) calls :meth:`VisionCache.clear`.

Qwen3-VL also returns "deepstack" features (added to the first decoder layers' hidden states at the video
positions); they are cached with the main features. transformers 5.17 returns them concatenated over the clips of
a call, 5.19 split per clip: both are handled.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from reasonkit.generation.prompts import VideoInput


@dataclass
class ClipFeatures:
    embeds: torch.Tensor  # [tokens, hidden]: what replaces the clip's <|video_pad|> embeddings
    deepstack: list[torch.Tensor] | None = None  # Qwen3-VL: one [tokens, hidden] per deepstack layer

    @property
    def nbytes(self) -> int:
        parts = [self.embeds, *(self.deepstack or [])]
        return sum(t.numel() * t.element_size() for t in parts)


class VisionCache:
    def __init__(self, model, *, max_bytes: int = 4 << 30, max_patches_per_call: int = 65536):
        from reasonkit.train.lean import batch_vision_attention

        # Qwen2.5-VL's windowed blocks call attention once per window with sdpa (64 windows per frame pair):
        # the trainer's replacement runs equal-length windows as one batched call (same outputs,
        # tests/test_lean.py); Qwen3-VL and flash attention keep the model's own forward.
        self.batched_windows = batch_vision_attention(model) > 0
        self.model = model
        self.max_bytes, self.max_patches_per_call = max_bytes, max_patches_per_call
        self.entries: OrderedDict[str, ClipFeatures] = OrderedDict()
        self.tower_calls = 0  # vision-tower forward passes made (what "vision once" is measured by)
        self.hits = self.misses = 0

    def clear(self) -> None:
        self.entries.clear()

    def features(self, clips: list[VideoInput]) -> list[ClipFeatures]:
        """The features of each clip, in order; the missing ones computed in as few tower calls as fit."""
        missing: dict[str, VideoInput] = {}
        for clip in clips:
            if clip.key in self.entries:
                self.entries.move_to_end(clip.key)
                self.hits += 1
            elif clip.key not in missing:
                missing[clip.key] = clip
                self.misses += 1
        todo = list(missing.values())
        while todo:
            chunk, patches = [], 0
            while todo and (not chunk or patches + todo[0].pixel_values.shape[0] <= self.max_patches_per_call):
                patches += todo[0].pixel_values.shape[0]
                chunk.append(todo.pop(0))
            for clip, feats in zip(chunk, self._run_tower(chunk)):
                self.entries[clip.key] = feats
        found = [self.entries[c.key] for c in clips]
        self._evict(keep={c.key for c in clips})
        return found

    def _run_tower(self, clips: list[VideoInput]) -> list[ClipFeatures]:
        base = self.model.model
        device = base.visual.device if hasattr(base.visual, "device") else next(base.visual.parameters()).device
        pixels = torch.cat([c.pixel_values for c in clips]).to(device)
        grids = torch.stack([c.grid_thw for c in clips]).to(device)
        self.tower_calls += 1
        out = base.get_video_features(pixels, grids, return_dict=True)
        dtype = base.language_model.embed_tokens.weight.dtype
        embeds = [e.to(dtype) for e in out.pooler_output]
        deep = getattr(out, "deepstack_features", None)
        per_clip: list[list[torch.Tensor] | None] = [None] * len(clips)
        if deep:
            sizes = [e.shape[0] for e in embeds]
            layers = [list(layer) if isinstance(layer, (list, tuple)) else list(torch.split(layer, sizes))
                      for layer in deep]
            per_clip = [[layer[i].to(dtype) for layer in layers] for i in range(len(clips))]
        return [ClipFeatures(e, d) for e, d in zip(embeds, per_clip)]

    def _evict(self, keep: set[str]) -> None:
        total = sum(f.nbytes for f in self.entries.values())
        for key in list(self.entries):
            if total <= self.max_bytes:
                break
            if key not in keep:
                total -= self.entries.pop(key).nbytes
