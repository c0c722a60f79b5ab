"""A KV cache allocated once per batch bucket, in the shape transformers' decoder layers write to.

The decoder layers call ``past_key_values.update(key, value, layer_idx)`` and attend over what it returns. Two
modes:

- prefill (``prefill_rows`` set, eager): the prompt's K/V of rows ``prefill_rows`` are stored at columns
  ``[0, P)`` and returned as they are (the prompt attends over itself only);
- decode (compiled / graph-captured): one token per row is written at column ``write_pos`` (a device tensor, so a
  captured graph replays at the next column) and the whole buffer is returned; the engine's mask hides the
  columns not written yet and the left padding.

Every row of a batch writes the same column per step (prompts are left-padded to one length), so one index
serves the batch. Buffers never move: their addresses are marked static for CUDA graphs.
"""

from __future__ import annotations

import torch


def _static(t: torch.Tensor) -> torch.Tensor:
    """Tell dynamo's CUDA-graph trees this tensor keeps its address (it is mutated in place, never replaced)."""
    if t.is_cuda:
        torch._dynamo.mark_static_address(t)
    return t


class StaticKVCache:
    is_compileable = True  # transformers asks caches this before compiling a forward

    def __init__(self, *, layers: int, batch: int, kv_heads: int, length: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device):
        shape = (batch, kv_heads, length, head_dim)
        self.keys = [_static(torch.zeros(shape, dtype=dtype, device=device)) for _ in range(layers)]
        self.values = [_static(torch.zeros(shape, dtype=dtype, device=device)) for _ in range(layers)]
        self.write_pos = _static(torch.zeros(1, dtype=torch.long, device=device))
        self.prefill_rows: slice | None = None
        self.length, self.batch = length, batch

    @property
    def nbytes(self) -> int:
        return 2 * sum(k.numel() * k.element_size() for k in self.keys)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.prefill_rows is not None:
            n = key_states.shape[2]
            self.keys[layer_idx][self.prefill_rows, :, :n] = key_states
            self.values[layer_idx][self.prefill_rows, :, :n] = value_states
            return key_states, value_states
        self.keys[layer_idx].index_copy_(2, self.write_pos, key_states)
        self.values[layer_idx].index_copy_(2, self.write_pos, value_states)
        return self.keys[layer_idx], self.values[layer_idx]

    def share_prompt_rows(self, source: torch.Tensor, prompt_len: int) -> None:
        """Row r's prompt K/V becomes row ``source[r]``'s: the n completions of a prompt (a GRPO group) are
        prefilled once and copied, not recomputed."""
        for buf in (*self.keys, *self.values):
            buf[:, :, :prompt_len] = buf[source, :, :prompt_len]

    # What transformers may ask a cache object besides update() (none of it is used on the engine's paths).
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.write_pos.item())

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return self.length
