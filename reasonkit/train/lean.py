"""The memory-lean training forward of a Qwen2.5-VL policy: hidden states from the model body, then the LM head
only at the positions that are scored (SFT: label positions; GRPO: completion tokens), in chunks whose fp32
logits are recomputed in the backward pass instead of kept. A (B, L, vocab) fp32 logits tensor never exists:
at 4 × 4096 tokens and Qwen's 152k vocabulary that tensor alone is 10 GB, and HF's loss keeps it plus its
gradient.

Also here: a frozen vision prefix (patch embedding and leading frozen blocks) that runs under ``no_grad`` —
transformers' gradient checkpointing hooks every input embedding, the vision patch embedding included, to
require grad, so a frozen tower otherwise still runs its whole backward; and one vision encoding per distinct
video in a batch (GRPO's G completions of one prompt share their clip).

``install(model)`` gives the module an instance-level ``forward`` that accepts ``reasonkit_head=<callable>``;
everything else (``generate``, eval, export) goes to the class's own forward unchanged. The DeepSpeed engine's
forward passes the keyword through, so ZeRO's hooks run exactly as for a plain forward.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

IGNORE = -100
CHUNK_TOKENS = 2048  # fp32 logits of one chunk: 2048 x 152k x 4 B = 1.2 GB, recomputed in backward


def install(model, *, chunk_tokens: int = CHUNK_TOKENS) -> None:
    """Make ``model`` (a transformers *ForConditionalGeneration / *ForCausalLM) accept ``reasonkit_head``."""
    if getattr(model, "_reasonkit_lean", False):
        return
    original = type(model).forward

    @functools.wraps(original)  # generate() reads forward's signature (e.g. whether logits_to_keep exists)
    def forward(self, *args, reasonkit_head: Callable | None = None, video_index=None, **kwargs):
        if reasonkit_head is None:
            return original(self, *args, **kwargs)
        kwargs.pop("labels", None)
        kwargs.pop("logits_to_keep", None)
        kwargs["use_cache"] = False
        body = self.model
        if video_index is not None and getattr(self.config, "model_type", None) not in SHARED_VIDEO_MODELS:
            # other families' video features carry more than one tensor per clip: give them every row's pixels
            kwargs["pixel_values_videos"] = expand_videos(kwargs["pixel_values_videos"], kwargs["video_grid_thw"],
                                                          video_index)
            video_index = None
        with shared_video_features(body, video_index):
            hidden = body(*args, **kwargs).last_hidden_state
        return reasonkit_head(hidden, self.lm_head)

    model.forward = types.MethodType(forward, model)
    model._reasonkit_lean = True
    model._reasonkit_chunk_tokens = chunk_tokens
    skip_frozen_vision_backward(model)
    if BATCH_VISION_WINDOWS:
        batch_vision_attention(model)


# The vision tower's sdpa path runs one attention call per window (64 patches) or frame: 64 windows x 28
# windowed blocks per 448x448 frame pair, each a launch-bound micro-kernel, then again in recompute and backward.
# Windows of one grid are all the same size, so they stack into one batched call. Bench levers switch these off.
BATCH_VISION_WINDOWS = True
SHARED_VIDEO_MODELS = ("qwen2_5_vl",)  # model types whose get_video_features returns one tensor per clip


def skip_frozen_vision_backward(model) -> int:
    """Run the frozen prefix of the vision tower (patch embedding, then blocks up to the first trainable one)
    under ``no_grad``. Returns how many modules were wrapped. Call after freezing (and after gradient
    checkpointing is enabled; the order does not matter for correctness)."""
    visual = getattr(getattr(model, "model", None), "visual", None)
    if visual is None:
        return 0
    wrapped = 0
    for module in [visual.patch_embed, *visual.blocks]:
        if any(p.requires_grad for p in module.parameters()):
            break
        module.forward = types.MethodType(_no_grad_forward, module)
        if getattr(module, "gradient_checkpointing", False):
            module.gradient_checkpointing = False  # nothing to recompute for a backward that never runs
        wrapped += 1
    return wrapped


def batch_vision_attention(model) -> int:
    """Give each vision attention module a forward that runs equal-length chunks (windows, frames) as one
    batched sdpa call; any other layout, and flash attention, takes the module's own forward."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    visual = getattr(getattr(model, "model", None), "visual", None)
    if visual is None or "flash" in str(getattr(visual.config, "_attn_implementation", "")):
        return 0
    if not all(isinstance(block.attn, Qwen2_5_VLVisionAttention) for block in visual.blocks):
        return 0  # the replacement mirrors Qwen2.5-VL's attention forward only
    for block in visual.blocks:
        block.attn.forward = types.MethodType(_batched_vision_attention, block.attn)
    return len(visual.blocks)


def _batched_vision_attention(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None,
                              **kwargs):
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    if len(set(lengths)) != 1 or position_embeddings is None:
        return type(self).forward(self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)
    seq, chunks, size = hidden_states.shape[0], len(lengths), lengths[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = qwen.apply_rotary_pos_emb_vision(q, k, cos, sin)
    # (seq, heads, dim) -> (chunks, heads, size, dim): the chunks are consecutive runs of the sequence
    q, k, v = (t.reshape(chunks, size, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
    attention = qwen.ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                           qwen.eager_attention_forward)
    out, _ = attention(self, q, k, v, attention_mask=None, scaling=self.scaling,
                       dropout=0.0 if not self.training else self.attention_dropout, is_causal=False, **kwargs)
    return self.proj(out.reshape(seq, -1).contiguous())


def _no_grad_forward(self, *args, **kwargs):
    import torch

    with torch.no_grad():
        return type(self).forward(self, *args, **kwargs)


class shared_video_features:
    """While active, ``body.get_video_features`` encodes each distinct video once: ``video_index[i]`` is the
    distinct video (row of the ``pixel_values_videos`` given) that batch row i shows. The features of one video
    are reused for every row that shows it; gradients from all of them add up in the one encoding."""

    def __init__(self, body, video_index):
        self.body, self.video_index = body, video_index

    def __enter__(self):
        if self.video_index is None:
            return self
        original = self.body.get_video_features
        index = [int(i) for i in self.video_index]

        def get_video_features(pixel_values_videos, video_grid_thw=None, *args, **kwargs):
            unique_grid = distinct_rows(video_grid_thw, index)
            out = original(pixel_values_videos, unique_grid, *args, **kwargs)
            feats = out.pooler_output if hasattr(out, "pooler_output") else out
            expanded = tuple(feats[i] for i in index)
            if hasattr(out, "pooler_output"):
                out.pooler_output = expanded
                if getattr(out, "deepstack_features", None) is not None:  # Qwen3-VL: per layer, split per video
                    out.deepstack_features = [tuple(layer[i] for i in index) for layer in out.deepstack_features]
                return out
            return expanded

        self.body.get_video_features = get_video_features
        return self

    def __exit__(self, *exc):
        if self.video_index is not None:
            del self.body.get_video_features  # back to the class's method
        return False


def expand_videos(pixel_values_videos, video_grid_thw, video_index):
    """The distinct clips' patches (``pixel_values_videos``) laid out again as one clip per batch row."""
    import torch

    index = [int(i) for i in video_index]
    sizes = distinct_rows(video_grid_thw, index).prod(-1).tolist()
    clips = torch.split(pixel_values_videos, sizes)
    return torch.cat([clips[i] for i in index])


def distinct_rows(grid, index: list[int]):
    """The grid rows of the distinct videos, in distinct-video order (the first row that shows each)."""
    first: dict[int, int] = {}
    for row, video in enumerate(index):
        first.setdefault(video, row)
    return grid[[first[v] for v in range(len(first))]]


# ---------------------------------------------------------------------------------------------- heads
def _chunk_logps(lm_head, hidden, targets, temperature: float):
    logits = lm_head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def _chunk_entropy(lm_head, hidden, temperature: float):
    logits = lm_head(hidden).float() / temperature
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def token_logps(lm_head, hidden, targets, *, temperature: float = 1.0, chunk_tokens: int = CHUNK_TOKENS,
                with_entropy: bool = False):
    """log p(target) for N (hidden state, target) pairs, ``hidden`` (N, H), through ``lm_head`` in chunks of
    ``chunk_tokens``; each chunk's logits are recomputed in backward (activation checkpointing), so only one
    chunk's fp32 logits exist at a time. With ``with_entropy`` also the detached entropy at each position."""
    import torch
    from torch.utils.checkpoint import checkpoint

    logps, entropies = [], []
    for start in range(0, hidden.shape[0], chunk_tokens):
        h, t = hidden[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled() and h.requires_grad:
            logps.append(checkpoint(_chunk_logps, lm_head, h, t, temperature, use_reentrant=False))
        else:
            logps.append(_chunk_logps(lm_head, h, t, temperature))
        if with_entropy:
            with torch.no_grad():
                entropies.append(_chunk_entropy(lm_head, h, temperature))
    empty = hidden.new_zeros(0, dtype=torch.float32)
    logp = torch.cat(logps) if logps else empty
    return (logp, torch.cat(entropies) if entropies else empty) if with_entropy else logp


class LabelLoss:
    """SFT head: mean cross-entropy over the positions whose next token has a label (HF's loss, reduction mean),
    computing logits only there."""

    def __init__(self, labels, chunk_tokens: int = CHUNK_TOKENS):
        self.labels, self.chunk_tokens = labels, chunk_tokens

    def __call__(self, hidden, lm_head) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        targets = self.labels[:, 1:].to(hidden.device)
        mask = targets != IGNORE
        picked = hidden[:, :-1][mask]
        if picked.shape[0] == 0:  # nothing to learn in this micro-batch: a zero that still has a graph
            return CausalLMOutputWithPast(loss=hidden.sum() * 0.0)
        logps = token_logps(lm_head, picked, targets[mask], chunk_tokens=self.chunk_tokens)
        return CausalLMOutputWithPast(loss=-logps.mean())


class CompletionLogps:
    """GRPO head: (B, T) log-probs of the completion tokens (``completion_ids`` right after the prompt, the
    layout of grpo/sequences.py) at the sampling temperature, logits only where ``completion_mask`` is 1 (0
    elsewhere); with ``with_entropy`` also the detached (B, T) entropy."""

    def __init__(self, completion_ids, completion_mask, temperature: float, *, with_entropy: bool = False,
                 chunk_tokens: int = CHUNK_TOKENS):
        self.ids, self.mask, self.temperature = completion_ids, completion_mask, temperature
        self.with_entropy, self.chunk_tokens = with_entropy, chunk_tokens

    def __call__(self, hidden, lm_head):
        import torch

        ids, mask = self.ids.to(hidden.device), self.mask.to(hidden.device).bool()
        T = ids.shape[1]
        positions = hidden[:, -T - 1:-1]  # position t predicts completion token t
        out = token_logps(lm_head, positions[mask], ids[mask], temperature=self.temperature,
                          chunk_tokens=self.chunk_tokens, with_entropy=self.with_entropy)
        logp, entropy = out if self.with_entropy else (out, None)
        full = torch.zeros(ids.shape, dtype=torch.float32, device=hidden.device)
        full = full.masked_scatter(mask, logp)
        if entropy is None:
            return full
        return full, torch.zeros_like(full).masked_scatter(mask, entropy)
