"""Token selection on the device, inside the decode step: transformers' logits-processor semantics, one setting
per row, and per-request seeds whose draws do not depend on the batch.

Order and semantics follow ``generate`` (``GenerationMixin._get_logits_processor``): repetition penalty over the
prompt and generated tokens (``RepetitionPenaltyLogitsProcessor``); end-of-sequence suppressed before
``min_tokens`` (``MinNewTokensLengthLogitsProcessor``); presence/frequency penalties over the generated tokens
(:class:`reasonkit.backends.hf.PenaltyProcessor`); then, when sampling, temperature, top-k (``TopKLogitsWarper``:
ties with the k-th value kept) and top-p (``TopPLogitsWarper``: the smallest set whose probability exceeds
``top_p``, at least one token). Greedy rows take the argmax of the penalised scores (first index on ties, as
``torch.argmax`` in ``generate``).

Sampling is Gumbel-max: ``argmax(scores / T + g)`` with ``g = -log(-log(u))`` is an exact draw from
``softmax(scores / T)``. ``u`` comes from a counter-based hash of (row seed, step, token id), not from a stateful
generator, so a request draws the same noise whatever its batch neighbours, batch size or position in the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

MASK32 = 0xFFFFFFFF


class Flags(NamedTuple):
    """What a batch needs from the step, fixed per batch (each combination is its own compiled graph)."""

    sample: bool = False  # any row samples
    top_k: int = 0  # the largest k of any row (0: no row filters by k)
    top_p: bool = False
    repetition: bool = False
    presence_frequency: bool = False
    min_tokens: bool = False


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for 0 <= x < 2^32 without int64 overflow (split c in 16-bit halves)."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (Wellons' lowbias32): every input bit affects every output bit."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform_noise(seeds: torch.Tensor, step: torch.Tensor, vocab: int) -> torch.Tensor:
    """``u[r, v]`` in (0, 1), a pure function of (seeds[r], step, v): ``seeds`` int64 [B], ``step`` int64 [1]."""
    key = _mix32(_mix32(seeds & MASK32) ^ _mix32((seeds >> 32) & MASK32))
    key = _mix32((key + _mul32(step & MASK32, 0x9E3779B9)) & MASK32)
    tokens = torch.arange(vocab, device=seeds.device, dtype=torch.long)
    x = _mix32((key[:, None] + _mul32(tokens, 0x85EBCA6B)[None, :]) & MASK32)
    x = _mix32(x ^ key[:, None])
    # 23 bits: k + 0.5 is exact in float32 and the largest value, 1 - 2^-24, still below 1 (with 24 bits it rounds
    # to 1.0, whose Gumbel noise is +inf: -inf + inf = NaN on a filtered token, and argmax picks NaN)
    return ((x >> 9).to(torch.float32) + 0.5) * (1.0 / (1 << 23))


def row_seed(seed: int, completion: int) -> int:
    """The seed of completion ``completion`` of a request seeded ``seed`` (a 63-bit value; Python-side)."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{completion}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def penalised_scores(logits: torch.Tensor, st, flags: Flags) -> torch.Tensor:
    """The processors ``generate`` runs before its warpers (applied also when decoding greedily)."""
    scores = logits
    if flags.repetition:
        penalty = st.repetition[:, None]
        seen = st.prompt_seen | (st.counts > 0)
        scores = torch.where(seen, torch.where(scores < 0, scores * penalty, scores / penalty), scores)
    if flags.min_tokens:
        early = (st.step < st.min_tokens)[:, None] & st.eos_mask[None, :]
        scores = scores.masked_fill(early, float("-inf"))
    if flags.presence_frequency:
        scores = scores - st.frequency[:, None] * st.counts - st.presence[:, None] * (st.counts > 0).to(scores.dtype)
    return scores


def warped_scores(scores: torch.Tensor, st, flags: Flags) -> torch.Tensor:
    """Temperature, top-k and top-p, per row (rows without a filter keep every token)."""
    scores = scores / st.temperature[:, None]
    if flags.top_k:
        top = torch.topk(scores, min(flags.top_k, scores.shape[-1]), dim=-1).values
        k = st.top_k.clamp(min=1, max=top.shape[-1])
        kth = top.gather(1, (k - 1)[:, None])
        kth = torch.where(st.top_k[:, None] > 0, kth, torch.full_like(kth, float("-inf")))
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if flags.top_p:
        ordered, order = torch.sort(scores, descending=False, dim=-1)
        cumulative = blocked_cumsum(ordered.softmax(dim=-1))
        drop = cumulative <= (1 - st.top_p)[:, None]
        drop[:, -1] = False  # keep at least the most likely token
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return scores


def blocked_cumsum(x: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``x.cumsum(-1)`` of a ``[rows, n]`` tensor as two short scans (within blocks, then over block totals):
    inductor's one long split scan over a 150k vocabulary fails to compile at some batch sizes (torch 2.11)."""
    rows, n = x.shape
    pad = -n % block
    blocks = torch.nn.functional.pad(x, (pad, 0)).view(rows, -1, block)  # zeros in front change no later sum
    inner = blocks.cumsum(-1)
    totals = inner[..., -1]
    return (inner + (totals.cumsum(-1) - totals)[..., None]).view(rows, -1)[:, pad:]


def select_tokens(logits: torch.Tensor, st, flags: Flags) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of every row and its log-probability under the model (raw logits, as vLLM reports it)."""
    logits = logits.float()
    scores = penalised_scores(logits, st, flags)
    tokens = scores.argmax(dim=-1)
    if flags.sample:
        gumbel = -torch.log(-torch.log(uniform_noise(st.seeds, st.step, logits.shape[-1])))
        drawn = (warped_scores(scores, st, flags) + gumbel).argmax(dim=-1)
        tokens = torch.where(st.greedy, tokens, drawn)
    logprob = logits.gather(1, tokens[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
    return tokens, logprob
