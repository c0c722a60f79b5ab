"""Attention over the engine's preallocated KV cache, registered through transformers' AttentionInterface.

transformers' ``sdpa`` path repeats the K/V heads of a GQA model to the query-head count whenever a mask is given
(on CUDA, SDPA's ``enable_gqa`` with a mask falls back to the math kernel, see
``transformers.integrations.sdpa_attention.use_gqa_in_sdpa``): with a static cache that copies the whole cache in
every layer of every decode step (7B: 7x the K/V bytes). Here:

- decode (one query token) of a few rows: two batched matmuls over the grouped heads (:func:`grouped_matmul_decode`);
- decode of more rows: the ``G = heads / kv_heads`` query heads that share a K/V head are folded into the
  query-length axis, ``q: [B, Hkv, G, D]`` against ``k, v: [B, Hkv, L, D]`` — exactly grouped attention, no copy,
  and any SDPA kernel that takes a mask serves it (the mask is the same for every query of a row);
- no mask (an unpadded causal prefill): SDPA with ``enable_gqa=True`` (flash kernel, no copy);
- a masked prefill (left padding): the heads are repeated once over the prompt only (compute-bound, cheap).

The name is selected only while the engine runs (:func:`engine_attention`), so the training forward and
``generate`` keep the model's own implementation. A mask function is registered under the same name (transformers'
sdpa mask), so a forward that does not pass its own 4D mask still gets a correct causal mask.
"""

from __future__ import annotations

import contextlib

import torch

NAME = "reasonkit_gqa_sdpa"
# Up to this many rows a decode step's attention runs as matmuls (grouped_matmul_decode), above it as SDPA: the
# crossover measured on the H200 at the 7B shape (bench/gpu/decode_attention.py, bench/RESULTS.md).
MATMUL_DECODE_ROWS = 16


def gqa_sdpa_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                       is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: q ``[B, H, Q, D]``, k/v ``[B, Hkv, K, D]``; returns
    ``([B, Q, H, D], None)``."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    dropout = dropout if module.training else 0.0
    if q_len == 1 and attention_mask is not None and batch <= MATMUL_DECODE_ROWS and not dropout:
        return grouped_matmul_decode(query, key, value, attention_mask, scaling), None
    if q_len == 1 and heads != kv_heads:
        groups = heads // kv_heads
        out = sdpa(query.reshape(batch, kv_heads, groups, dim), key, value, attn_mask=attention_mask,
                   dropout_p=dropout, scale=scaling)
        return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None
    if attention_mask is None:
        causal = q_len > 1 and (is_causal if is_causal is not None else getattr(module, "is_causal", True))
        out = sdpa(query, key, value, dropout_p=dropout, scale=scaling, is_causal=causal,
                   enable_gqa=heads != kv_heads)
        return out.transpose(1, 2).contiguous(), None
    if heads != kv_heads:
        key = key.repeat_interleave(heads // kv_heads, dim=1)
        value = value.repeat_interleave(heads // kv_heads, dim=1)
    out = sdpa(query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def grouped_matmul_decode(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                          scaling: float | None) -> torch.Tensor:
    """One decode token's grouped attention as two batched matmuls and a softmax: q ``[B, H, 1, D]``, k/v
    ``[B, Hkv, L, D]``, additive mask ``[B, 1, 1, L]``; returns ``[B, 1, H, D]``.

    Fused SDPA kernels give each (row, K/V head) one thread block, so a few rows leave most of the GPU idle while
    it reads the cache; cuBLAS splits the cache length instead. Scores are kept in fp32 (bmm ``out_dtype``, as a
    flash kernel keeps them in registers); bf16 scores would round away the softmax's precision."""
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    q = query.reshape(batch * kv_heads, groups, dim)
    k_t = key.reshape(batch * kv_heads, length, dim).transpose(1, 2)
    if query.is_cuda and query.dtype != torch.float32:
        scores = torch.bmm(q, k_t, out_dtype=torch.float32)
    else:  # fp32, or a device without bmm's out_dtype (the CPU): upcast
        scores = torch.bmm(q.float(), k_t.float())
    scores = scores.view(batch, kv_heads, groups, length) * (scaling if scaling is not None else dim ** -0.5)
    probs = (scores + attention_mask_fp32(mask)).softmax(-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, Hkv, G, D]
    return out.reshape(batch, 1, heads, dim)


def attention_mask_fp32(mask: torch.Tensor) -> torch.Tensor:
    return mask.float() if mask.dtype != torch.bool else torch.where(mask, 0.0, float("-inf"))


_registered = False


def register() -> str:
    """Register the attention (and its mask) function with transformers once per process; returns its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        AttentionInterface.register(NAME, gqa_sdpa_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
        _registered = True
    return NAME


@contextlib.contextmanager
def engine_attention(text_config):
    """Select the engine's attention on the language model's config for the duration of the block (the
    attention layers read ``config._attn_implementation`` on every call)."""
    register()
    before = text_config._attn_implementation
    text_config._attn_implementation = NAME
    try:
        yield
    finally:
        text_config._attn_implementation = before
