"""Everything a decode step reads and writes, allocated once per batch bucket (rows x cache length) and reset in
place per batch: a captured CUDA graph replays against these exact addresses, so nothing here is ever replaced."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reasonkit.generation.kv_cache import StaticKVCache, _static


@dataclass
class RowSettings:
    """One row's sampling settings (a completion of a request)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = 0
    min_tokens: int = 0


class BatchState:
    # buffers with one row per batch row (``positions`` has its rows on dim 1; the cache is moved apart)
    ROW_BUFFERS = ("valid", "tokens", "out", "out_logprobs", "done", "lengths", "counts", "prompt_seen",
                   "max_tokens", "min_tokens", "greedy", "temperature", "top_p", "top_k", "repetition",
                   "presence", "frequency", "seeds")

    def __init__(self, *, model_cfg, batch: int, length: int, vocab: int, eos_ids: list[int], pad_id: int,
                 dtype: torch.dtype, device: torch.device):
        self.batch, self.length, self.vocab, self.pad_id = batch, length, vocab, pad_id
        self.cache = StaticKVCache(layers=model_cfg.num_hidden_layers, batch=batch,
                                   kv_heads=model_cfg.num_key_value_heads, length=length,
                                   head_dim=getattr(model_cfg, "head_dim", None)
                                   or model_cfg.hidden_size // model_cfg.num_attention_heads,
                                   dtype=dtype, device=device)

        def buf(*shape, dtype=torch.long, fill=0):
            return _static(torch.full(shape, fill, dtype=dtype, device=device))

        self.valid = buf(batch, length, dtype=torch.bool, fill=False)  # key columns a row may attend to
        self.mask_min = torch.finfo(dtype).min  # additive mask value: finite, so an all-masked row stays finite
        self.mask_dtype = dtype
        self.positions = buf(4, batch, 1)  # rope ids of the token fed next (text row + 3 mrope rows)
        self.tokens = buf(batch, fill=pad_id)  # the token fed next (the last one chosen)
        self.step = buf(1)  # tokens chosen so far in this batch (the noise counter)
        self.out = buf(batch, length, fill=pad_id)
        self.out_logprobs = buf(batch, length, dtype=torch.float32)
        self.done = buf(batch, dtype=torch.bool, fill=True)
        self.lengths = buf(batch)  # tokens recorded per row (up to and including its stop token)
        self.counts = buf(batch, vocab, dtype=torch.float32)  # generated-token counts (penalties)
        self.prompt_seen = buf(batch, vocab, dtype=torch.bool, fill=False)
        self.eos_mask = buf(vocab, dtype=torch.bool, fill=False)
        self.eos_mask[[i for i in eos_ids if 0 <= i < vocab]] = True
        self.max_tokens = buf(batch)
        self.min_tokens = buf(batch)
        self.greedy = buf(batch, dtype=torch.bool, fill=True)
        self.temperature = buf(batch, dtype=torch.float32, fill=1.0)
        self.top_p = buf(batch, dtype=torch.float32, fill=1.0)
        self.top_k = buf(batch)
        self.repetition = buf(batch, dtype=torch.float32, fill=1.0)
        self.presence = buf(batch, dtype=torch.float32)
        self.frequency = buf(batch, dtype=torch.float32)
        self.seeds = buf(batch)

    @property
    def nbytes(self) -> int:
        return self.cache.nbytes + self.batch * self.row_extra_bytes(self.length, self.vocab)

    @staticmethod
    def bytes_for(model_cfg, batch: int, length: int, vocab: int, dtype: torch.dtype) -> int:
        """Device bytes of a bucket of ``batch`` rows x ``length`` columns, before allocating it."""
        head_dim = getattr(model_cfg, "head_dim", None) or model_cfg.hidden_size // model_cfg.num_attention_heads
        kv = 2 * model_cfg.num_hidden_layers * model_cfg.num_key_value_heads * head_dim * length * dtype.itemsize
        return batch * (kv + BatchState.row_extra_bytes(length, vocab))

    @staticmethod
    def row_extra_bytes(length: int, vocab: int) -> int:
        return vocab * 5 + length * 13  # counts (float32) + prompt_seen (bool); out, logprobs, valid

    def reset(self, settings: list[RowSettings], prompt_mask: torch.Tensor, prompt_ids: torch.Tensor,
              last_positions: torch.Tensor) -> None:
        """Start a batch: ``prompt_mask``/``prompt_ids`` [n, P] left-padded, ``last_positions`` [4, n] the rope ids
        of each prompt's last token; rows n.. of the bucket are idle (done from the start)."""
        n, prompt_len = prompt_mask.shape
        dev = self.valid.device

        def put(buf, values, idle):
            buf[n:] = idle
            buf[:n] = torch.tensor(values, dtype=buf.dtype, device=dev)

        self.valid.zero_()
        self.valid[:n, :prompt_len] = prompt_mask.to(dev, torch.bool)
        self.positions.zero_()
        self.positions[:, :n, 0] = last_positions.to(dev) + 1
        self.tokens.fill_(self.pad_id)
        self.step.zero_()
        self.cache.write_pos.fill_(prompt_len)
        self.out.fill_(self.pad_id)
        self.out_logprobs.zero_()
        self.done.fill_(True)
        self.done[:n] = False
        self.lengths.zero_()
        self.counts.zero_()
        self.prompt_seen.zero_()
        ids = prompt_ids.to(dev)
        self.prompt_seen[:n].scatter_(1, ids.clamp(0, self.vocab - 1), prompt_mask.to(dev, torch.bool))
        put(self.max_tokens, [s.max_tokens for s in settings], 0)
        put(self.min_tokens, [s.min_tokens for s in settings], 0)
        put(self.greedy, [s.temperature <= 0 for s in settings], True)
        put(self.temperature, [s.temperature if s.temperature > 0 else 1.0 for s in settings], 1.0)
        put(self.top_p, [s.top_p for s in settings], 1.0)
        put(self.top_k, [max(s.top_k, 0) for s in settings], 0)
        put(self.repetition, [s.repetition_penalty for s in settings], 1.0)
        put(self.presence, [s.presence_penalty for s in settings], 0.0)
        put(self.frequency, [s.frequency_penalty for s in settings], 0.0)
        put(self.seeds, [s.seed for s in settings], 0)

    def move_rows_into(self, dest: BatchState, rows: torch.Tensor, columns: int) -> None:
        """Continue rows ``rows`` (device indices) of this batch as rows 0..len(rows)-1 of ``dest``, a bucket of
        fewer rows and the same length; ``columns``: the cache columns written so far. ``dest``'s remaining rows
        repeat the first one and are marked done (idle: they compute, record nothing)."""
        n = rows.numel()
        full = torch.cat([rows, rows[:1].expand(dest.batch - n)])
        for name in self.ROW_BUFFERS:
            getattr(dest, name).copy_(getattr(self, name)[full])
        dest.positions.copy_(self.positions[:, full])
        dest.done[n:] = True
        dest.step.copy_(self.step)
        dest.cache.write_pos.copy_(self.cache.write_pos)
        for mine, theirs in zip((*self.cache.keys, *self.cache.values), (*dest.cache.keys, *dest.cache.values)):
            theirs[:, :, :columns] = mine[full, :, :columns]

    def record(self, tokens: torch.Tensor, logprobs: torch.Tensor) -> None:
        """Store the chosen tokens (idle and finished rows keep padding), count them, mark rows that finished."""
        alive = ~self.done
        tokens = torch.where(alive, tokens, torch.full_like(tokens, self.pad_id))
        self.out.index_copy_(1, self.step, tokens[:, None])
        self.out_logprobs.index_copy_(1, self.step, torch.where(alive, logprobs, 0.0)[:, None])
        self.counts.scatter_add_(1, tokens[:, None], alive.to(torch.float32)[:, None])
        self.tokens.copy_(tokens)
        self.lengths.add_(alive.to(torch.long))
        self.step.add_(1)
        self.done.logical_or_(alive & (self.eos_mask[tokens] | (self.step >= self.max_tokens)))

    def decode_mask(self) -> torch.Tensor:
        """The additive attention mask of a decode step, [B, 1, 1, L], after the fed token's column is opened."""
        self.valid.index_fill_(1, self.cache.write_pos, True)
        zero = torch.zeros((), dtype=self.mask_dtype, device=self.valid.device)
        return torch.where(self.valid, zero, self.mask_min)[:, None, None, :]
