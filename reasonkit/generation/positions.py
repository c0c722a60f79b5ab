"""Rope position ids as ``generate`` builds them for Qwen2.5-VL / Qwen3-VL (3D mrope plus a text row).

At prefill ``generate`` calls the model's ``_prepare_position_ids_for_generation``: a text row
``cumsum(attention_mask) - 1`` (0 on padding) stacked on the model's own ``get_rope_index`` (temporal, height,
width ids of the video tokens; text continues after the largest). Per decode step
``_update_model_kwargs_for_generation`` appends ``last + 1`` to every row, so each row of a sequence advances by
one per token from its prompt's last position. The model's ``get_rope_index`` is called as ``generate`` calls it
(keyword arguments = the processor's outputs), so version differences (e.g. Qwen2.5-VL's temporal spacing,
``int(seconds)`` in transformers 5.17 vs a float in 5.19) follow the installed transformers.
"""

from __future__ import annotations

from typing import Any

import torch


def prefill_positions(model, batch: dict[str, Any]) -> torch.Tensor:
    """[4, B, P] position ids of a left-padded batch (text row first, then the 3 mrope rows)."""
    mask = batch["attention_mask"]
    text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    if batch.get("mm_token_type_ids") is not None and batch.get("video_grid_thw") is not None:
        kwargs = {k: v for k, v in batch.items() if k != "input_ids"}
        vision, _ = model.model.get_rope_index(batch["input_ids"], **kwargs)
    else:
        vision = text[None].expand(3, -1, -1)
    return torch.cat([text[None], vision.to(text.dtype)], dim=0)
