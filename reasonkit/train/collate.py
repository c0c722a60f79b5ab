"""Turn training rows into model batches with the SAME chat template, frame spec and media code as evaluation.

Labels mask every token that is not an assistant turn (an assistant turn is everything after
``<|im_start|>assistant\\n`` up to and including its ``<|im_end|>``, so the model learns to stop). Samples longer
than ``model_max_length`` are dropped or truncated as the recipe says, and counted — never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonkit.types import Frames

IGNORE = -100


@dataclass
class CollateStats:
    samples: int = 0
    dropped_overlong: int = 0
    truncated: int = 0


def to_messages(row: dict[str, Any], *, with_video: bool, system_prompt: str | None) -> list[dict[str, Any]]:
    """Upstream conversation turns → processor chat messages; the video goes first in the first user turn."""
    turns = row["conversations"]
    messages: list[dict[str, Any]] = []
    if system_prompt and turns[0]["role"] != "system":
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    video_placed = not with_video
    for turn in turns:
        content = turn["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if turn["role"] == "user" and not video_placed:
            if not any(p.get("type") == "video" for p in parts):
                parts.insert(0, {"type": "video"})
            video_placed = True
        messages.append({"role": turn["role"], "content": parts})
    return messages


class SFTCollator:
    def __init__(self, processor, *, max_length: int, overlong: str = "drop", system_prompt: str | None = None):
        self.processor = processor
        self.max_length = max_length
        self.overlong = overlong
        self.system_prompt = system_prompt
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self.end_id = tok.convert_tokens_to_ids("<|im_end|>")
        self.stats = CollateStats()

    def encode_one(self, row: dict[str, Any], frames: Frames | None) -> dict[str, Any] | None:
        """Tokenise one row (input_ids, labels, vision inputs); None if it is over-long and must be dropped."""
        import torch

        from reasonkit.encoding import model_inputs

        messages = to_messages(row, with_video=frames is not None, system_prompt=self.system_prompt)
        enc = model_inputs(self.processor, [messages], [frames], generation_prompt=False)
        ids = enc["input_ids"][0]
        labels = self.assistant_labels(ids)
        self.stats.samples += 1
        if len(ids) > self.max_length:
            last_vision = _last_index(ids, self.processor.tokenizer.convert_tokens_to_ids("<|vision_end|>"))
            keep_labels = (labels[: self.max_length] != IGNORE).any()
            if self.overlong == "drop" or last_vision >= self.max_length or not keep_labels:
                self.stats.dropped_overlong += 1
                return None
            self.stats.truncated += 1
            full = len(ids)
            ids, labels = ids[: self.max_length], labels[: self.max_length]
            for key, value in list(enc.items()):  # every per-token tensor (attention_mask, mm_token_type_ids, ...)
                if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == full:
                    enc[key] = value[:, : self.max_length]
        enc["input_ids"], enc["labels"] = ids.unsqueeze(0), labels.unsqueeze(0)
        return enc

    def placeholder(self) -> dict[str, Any]:
        """A minimal text row (not counted in the stats) for zero-weight steps when a whole micro-batch was
        dropped."""
        encoded = self.encode_one({"conversations": [{"role": "user", "content": "."},
                                                     {"role": "assistant", "content": "."}]}, None)
        self.stats.samples -= 1
        return encoded

    def assistant_labels(self, ids):
        """Copy of ``ids`` with everything outside assistant turns set to IGNORE."""
        import torch

        labels = torch.full_like(ids, IGNORE)
        seq, head, n = ids.tolist(), self.header, len(self.header)
        i = 0
        while i <= len(seq) - n:
            if seq[i:i + n] == head:
                start = i + n
                end = start
                while end < len(seq) and seq[end] != self.end_id:
                    end += 1
                labels[start:end + 1] = ids[start:end + 1]  # the answer and its <|im_end|>
                i = end + 1
            else:
                i += 1
        return labels

    def pad(self, encoded: list[dict[str, Any]]) -> dict[str, Any]:
        """Right-pad token tensors; concatenate vision tensors (Qwen2.5-VL takes them flattened over the batch)."""
        import torch

        length = max(e["input_ids"].shape[1] for e in encoded)
        batch: dict[str, Any] = {}
        keys = dict.fromkeys(k for e in encoded for k in e)  # text-only rows have no vision keys
        for key in keys:
            values = [e[key] for e in encoded if key in e]
            if key in ("input_ids", "labels", "attention_mask") or (
                    isinstance(values[0], torch.Tensor) and values[0].dim() == 2
                    and values[0].shape[1] == encoded[0]["input_ids"].shape[1] and key != "pixel_values_videos"):
                fill = {"input_ids": self.pad_id, "labels": IGNORE}.get(key, 0)
                batch[key] = torch.cat([torch.nn.functional.pad(v, (0, length - v.shape[1]), value=fill)
                                        for v in values])
            elif isinstance(values[0], torch.Tensor):
                batch[key] = torch.cat(values)
            else:  # lists such as second_per_grid_ts
                batch[key] = torch.tensor([x for v in values for x in v])
        return batch


def _last_index(ids, token_id: int) -> int:
    hits = (ids == token_id).nonzero()
    return int(hits[-1]) if len(hits) else -1
