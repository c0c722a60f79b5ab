"""The generation engine: transformers' model code and weights, reasonkit's decode loop around them.

Per batch (rows grouped by prompt length, so little padding; as many rows as the bucket-buffer budget holds):

1. vision features from the :class:`VisionCache` (one tower pass per distinct clip);
2. prefill through the language model's own forward — inputs_embeds with the clips' features scattered in (and
   Qwen3-VL's deepstack features), the 3D rope ids ``generate`` would build, writing K/V into a cache allocated
   once per batch bucket. Each distinct prompt is prefilled once; its n completions copy its K/V;
3. decode: one step function (embed, the language model's forward over the static cache with the engine's GQA
   attention, LM head, sampling, bookkeeping) run eagerly on the CPU and, on CUDA, compiled by inductor and
   replayed as CUDA graphs (reasonkit.generation.steps says how each mode does it). A step is warmed up
   (compiled, recorded) once per process per (bucket, sampling flags), before its first batch.

Finished rows stay in their slot (masked: padding, no counts); every ``check_every`` steps (a host sync) the loop
stops when all are done, and when the rows still running fit a bucket of at most half as many rows (and at least
``compact_min_steps`` steps remain) they move there: their cache rows and state are copied into the smaller
bucket, whose step does less work per token. On CUDA they move only into a bucket whose compiled step exists
already (``compact_mode="existing"``): at the 7B shape a step's cost is mostly reading the weights, so a smaller
bucket saves little, less than a new compile costs or a plain captured step loses (bench/RESULTS.md).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch

from reasonkit.generation.attention import engine_attention
from reasonkit.generation.positions import prefill_positions
from reasonkit.generation.prompts import EncodedPrompt, padded_batch
from reasonkit.generation.sampling import Flags, select_tokens
from reasonkit.generation.state import BatchState, RowSettings
from reasonkit.generation.steps import COMPILED_MODES, STEP_MODES, build_step
from reasonkit.generation.vision import VisionCache

log = logging.getLogger(__name__)
MODES = ("auto", *STEP_MODES)
COMPACT_MODES = ("existing", *(m for m in STEP_MODES if m != "eager"))  # see the module docstring


@dataclass
class RowOutput:
    token_ids: list[int]  # the chosen tokens, the stop token included when one was chosen
    logprobs: list[float]  # log p(token) under the model's raw distribution


def flags_for(settings: list[RowSettings]) -> Flags:
    sampled = [s for s in settings if s.temperature > 0]
    return Flags(sample=bool(sampled), top_k=max([s.top_k for s in sampled if s.top_k > 0], default=0),
                 top_p=any(s.top_p < 1.0 for s in sampled),
                 repetition=any(s.repetition_penalty != 1.0 for s in settings),
                 presence_frequency=any(s.presence_penalty or s.frequency_penalty for s in settings),
                 min_tokens=any(s.min_tokens > 0 for s in settings))


def bucket_rows(n: int, max_batch: int) -> int:
    """Row buckets 1, 2, 4, ..., 32, then multiples of 32 (each bucket is a compile on CUDA; past 32 rows a
    power of two would leave up to half the rows idle)."""
    b = 1
    while b < n and b < 32:
        b *= 2
    if b < n:
        b = -(-n // 32) * 32
    return min(b, max_batch) if n <= max_batch else n


def bucket_length(n: int, step: int = 256, ratio: float = 1.25) -> int:
    """Cache lengths on a geometric grid (multiples of ``step``): few distinct buckets (each is a compile on
    CUDA), at most ~25% of the columns unused."""
    length = step
    while length < n:
        length = max(length + step, int(length * ratio) // step * step)
    return length


class Engine:
    def __init__(self, model, *, pad_id: int, eos_ids: list[int], mode: str = "auto", max_batch: int = 256,
                 prefill_tokens: int = 32768, check_every: int = 8, vision_cache_bytes: int | None = None,
                 max_states: int = 8, cache_bytes: int | None = None, compact_min_steps: int = 32,
                 compact_mode: str = "existing", inductor_tuning: bool = True):
        if mode not in MODES:
            raise ValueError(f"engine mode {mode!r}: one of {', '.join(MODES)}")
        if compact_mode not in COMPACT_MODES:
            raise ValueError(f"engine compact_mode {compact_mode!r}: one of {', '.join(COMPACT_MODES)}")
        self.model, self.pad_id, self.eos_ids = model, pad_id, list(eos_ids)
        self.lm, self.head = model.model.language_model, model.lm_head
        self.device = self.head.weight.device
        self.dtype = self.head.weight.dtype
        self.mode = ("compiled-graph" if self.device.type == "cuda" else "eager") if mode == "auto" else mode
        self.max_batch, self.prefill_tokens, self.check_every = max_batch, prefill_tokens, check_every
        cuda = self.device.type == "cuda"
        self.vision = VisionCache(model, max_bytes=vision_cache_bytes or ((4 << 30) if cuda else (256 << 20)))
        self.max_states, self.compact_min_steps, self.compact_mode = max_states, compact_min_steps, compact_mode
        self.inductor_tuning = inductor_tuning
        self.cache_bytes = cache_bytes  # None: what the device has free (see _budget)
        self.states: OrderedDict[tuple[int, int], BatchState] = OrderedDict()
        self.steps: dict[tuple, object] = {}
        self.warmup_s: dict[str, float] = {}  # per (bucket, flags): compile + capture time, paid once
        self.deepstack = "deepstack_visual_embeds" in inspect.signature(self.lm.forward).parameters
        self.video_token_id = getattr(model.config, "video_token_id", None)
        self._compiled: dict[str, object] = {}  # step mode -> the process's compiled decode_step
        self._weight_ptrs = self._pointers()

    def _pointers(self) -> list[int]:
        return [p.data_ptr() for p in self.model.parameters()]

    def _check_weights_in_place(self) -> None:
        """Captured graphs read the weights at the addresses they had at capture; weights re-materialised
        elsewhere (ZeRO-3 gathers them per rollout) make every captured step stale: capture again."""
        now = self._pointers()
        if now != self._weight_ptrs:
            self.steps.clear()
            self._weight_ptrs = now

    def describe(self) -> str:
        return f"reasonkit ({self.mode}, {self.device.type})"

    # ------------------------------------------------------------------------------------------- public
    def generate(self, rows: list[tuple[EncodedPrompt, RowSettings]], streamer=None) -> list[RowOutput]:
        """Completions for (prompt, settings) rows; rows sharing one prompt object are prefilled once.
        ``streamer``: an object with transformers' streamer interface (``put(ids)``: the prompt's ids first, then
        the new tokens as they are chosen, every ``check_every`` steps; ``end()``), for a single row."""
        if streamer is not None and len(rows) != 1:
            raise ValueError(f"a streamer follows one completion; got {len(rows)} rows")
        first: dict[int, int] = {}
        for i, (prompt, _) in enumerate(rows):
            first.setdefault(id(prompt), i)
        order = sorted(range(len(rows)), key=lambda i: (rows[i][0].length, first[id(rows[i][0])]))  # a prompt's
        # rows together, so they share one prefill
        results: list[RowOutput | None] = [None] * len(rows)
        budget, start = self._budget(), 0
        while start < len(order):
            take = min(self.max_batch, len(order) - start)
            while take > 1 and self._bucket_bytes([rows[i] for i in order[start:start + take]]) > budget:
                take = (take + 1) // 2  # the KV cache of this many rows would not fit: fewer rows per batch
            chunk = order[start:start + take]
            for i, out in zip(chunk, self._run_batch([rows[i] for i in chunk], budget, streamer)):
                results[i] = out
            start += take
        return results

    def _bucket_bytes(self, rows: list[tuple[EncodedPrompt, RowSettings]]) -> int:
        length = bucket_length(max(p.length for p, _ in rows) + max(s.max_tokens for _, s in rows))
        return BatchState.bytes_for(self.lm.config, bucket_rows(len(rows), self.max_batch), length,
                                    self.head.out_features, self.dtype)

    def _budget(self) -> int:
        """Bytes the bucket buffers may take: ``cache_bytes`` if given; on CUDA 60% of what is free now (the
        buckets this engine already holds count as free: they are evicted first), leaving room for the prefill's
        activations and for whatever else the process holds (a trainer's optimizer); on CPU 4 GiB."""
        if self.cache_bytes is not None:
            return self.cache_bytes
        if self.device.type != "cuda":
            return 4 << 30
        free, _ = torch.cuda.mem_get_info(self.device)
        idle = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return int(0.6 * (free + idle + sum(st.nbytes for st in self.states.values())))

    def warm_up(self, rows: int, prompt_len: int, settings: RowSettings) -> float:
        """Allocate the bucket that ``rows`` prompts of ``prompt_len`` tokens with these settings use, compile /
        capture its decode step and run it once (what a server does at start); returns the seconds it took."""
        rows = min(rows, self.max_batch)  # generate never puts more in one batch
        st = self._state(bucket_rows(rows, self.max_batch), bucket_length(prompt_len + settings.max_tokens),
                         self._budget())
        start = time.perf_counter()
        with torch.inference_mode(), engine_attention(self.lm.config):
            self._step(st, flags_for([settings] * rows))
        # one real pass through the bucket (text prefill, first-token sampling, both captured graphs replayed):
        # what the process pays the first time it runs them (kernel loading, library handles, graph upload)
        steps = min(settings.max_tokens, self.check_every + 2)
        ids = torch.full((prompt_len + settings.max_tokens - steps,), self.pad_id, dtype=torch.long)
        dry = replace(settings, max_tokens=steps, min_tokens=min(settings.min_tokens, steps))
        self._run_batch([(EncodedPrompt(ids), dry)] * rows, self._budget())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def release(self) -> None:
        """Drop the bucket buffers and captured steps (their memory), and the vision features."""
        self.states.clear()
        self.steps.clear()
        self.vision.clear()

    # ------------------------------------------------------------------------------------------- a batch
    def _run_batch(self, rows: list[tuple[EncodedPrompt, RowSettings]], budget: int,
                   streamer=None) -> list[RowOutput]:
        uniq: dict[int, int] = {}
        prompts: list[EncodedPrompt] = []
        for prompt, _ in rows:
            if id(prompt) not in uniq:
                uniq[id(prompt)] = len(prompts)
                prompts.append(prompt)
        source = torch.tensor([uniq[id(p)] for p, _ in rows])
        settings = [s for _, s in rows]
        batch = padded_batch(prompts, self.pad_id)
        prompt_len = batch["input_ids"].shape[1]
        new = max(s.max_tokens for s in settings)
        n = len(rows)
        st = self._state(bucket_rows(n, self.max_batch), bucket_length(prompt_len + new), budget)
        new = min(new, st.length - prompt_len)
        flags = flags_for(settings)
        if self.mode != "eager":
            self._check_weights_in_place()
        with torch.inference_mode(), engine_attention(self.lm.config):
            step = self._step(st, flags)
            positions = prefill_positions(self.model, batch)
            logits = self._prefill(st, prompts, batch, positions)
            if len(prompts) < n or source.tolist() != list(range(n)):
                full = torch.cat([source, torch.zeros(st.batch - n, dtype=torch.long)])
                st.cache.share_prompt_rows(full.to(self.device), prompt_len)
            st.reset(settings, batch["attention_mask"][source], batch["input_ids"][source],
                     positions[:, source, -1])
            first = torch.zeros(st.batch, logits.shape[-1], dtype=logits.dtype, device=self.device)
            first[:n] = logits[source.to(self.device)]
            st.record(*select_tokens(first, st, flags))
            slots = list(range(n))  # slot -> row of this batch
            outputs: dict[int, RowOutput] = {}
            sent = 0
            if streamer is not None:
                streamer.put(prompts[0].input_ids[None])
            k = 0  # decode steps done (the first token came from the prefill)
            while k < new - 1:
                count = min(self.check_every - k % self.check_every, new - 1 - k)  # to the next check or the end
                step(count)
                k += count
                if k % self.check_every == 0:
                    done = st.done[:len(slots)].tolist()
                    if streamer is not None:
                        sent = self._stream(st, streamer, sent)
                    if all(done):
                        break
                    if new - k >= self.compact_min_steps and (
                            moved := self._compact(st, flags, slots, done, prompt_len + k, budget, outputs)):
                        st, step, slots = moved
            outputs.update(self._outputs(st, slots, range(len(slots))))
        if streamer is not None:
            self._stream(st, streamer, sent)
            streamer.end()
        return [outputs[i] for i in range(n)]

    @staticmethod
    def _stream(st: BatchState, streamer, sent: int) -> int:
        """Hand row 0's tokens chosen since ``sent`` to the streamer; returns how many it has now."""
        have = int(st.lengths[0])
        if have > sent:
            streamer.put(st.out[0, sent:have].cpu())
        return have

    @staticmethod
    def _outputs(st: BatchState, slots: list[int], which) -> dict[int, RowOutput]:
        index = torch.tensor(list(which), dtype=torch.long, device=st.out.device)
        lengths = st.lengths[index].tolist()
        tokens, logprobs = st.out[index].tolist(), st.out_logprobs[index].tolist()
        return {slots[i]: RowOutput(t[:m], lp[:m]) for i, t, lp, m in zip(which, tokens, logprobs, lengths)}

    def _compact(self, st: BatchState, flags: Flags, slots: list[int], done: list[bool], columns: int, budget: int,
                 outputs: dict[int, RowOutput]):
        """Move the rows still running into a bucket of at most half as many rows, when they fit one; the finished
        rows' outputs are read out first. Returns the (state, step, slots) to continue with, or None."""
        running = [i for i, d in enumerate(done) if not d]
        rows = bucket_rows(len(running), self.max_batch)
        if rows > st.batch // 2:
            return None
        build = self.compact_mode if self.mode in COMPILED_MODES else None  # new steps: how to build them
        if build == "existing" and (rows, st.length, flags) not in self.steps:
            return None
        outputs.update(self._outputs(st, slots, [i for i, d in enumerate(done) if d]))
        dest = self._state(rows, st.length, budget, keep=(st.batch, st.length))
        step = self._step(dest, flags, mode=build)
        st.move_rows_into(dest, torch.tensor(running, dtype=torch.long, device=self.device), columns)
        return dest, step, [slots[i] for i in running]

    def _prefill(self, st: BatchState, prompts: list[EncodedPrompt], batch, positions) -> torch.Tensor:
        """Prompt K/V into cache rows 0..len(prompts)-1; returns each prompt's last-token logits."""
        features = self.vision.features([v for p in prompts for v in p.videos])
        per_prompt, at = [], 0
        for p in prompts:
            per_prompt.append(features[at:at + len(p.videos)])
            at += len(p.videos)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        positions = positions.to(self.device)
        width = ids.shape[1]
        chunk = max(1, self.prefill_tokens // width)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        logits = []
        for a in range(0, len(prompts), chunk):
            b = min(len(prompts), a + chunk)
            embeds = self.lm.embed_tokens(ids[a:b])
            clips = [f for feats in per_prompt[a:b] for f in feats]
            kwargs = {}
            if clips:
                video = ids[a:b] == self.video_token_id
                values = torch.cat([f.embeds for f in clips]).to(embeds.dtype)
                embeds = embeds.masked_scatter(video[..., None].expand_as(embeds), values)
                if self.deepstack and clips[0].deepstack:
                    kwargs = {"visual_pos_masks": video, "deepstack_visual_embeds": [
                        torch.cat([f.deepstack[i] for f in clips]) for i in range(len(clips[0].deepstack))]}
            allowed = causal[None] & mask[a:b, None, :].bool()
            zero = torch.zeros((), dtype=self.dtype, device=self.device)
            attn = torch.where(allowed, zero, torch.finfo(self.dtype).min)[:, None]
            st.cache.prefill_rows = slice(a, b)
            try:
                out = self.lm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions[:, a:b],
                              past_key_values=st.cache, use_cache=True, **kwargs)
            finally:
                st.cache.prefill_rows = None
            logits.append(self.head(out.last_hidden_state[:, -1]))
        return torch.cat(logits)

    # ------------------------------------------------------------------------------------------- buckets
    def _state(self, rows: int, length: int, budget: int, keep: tuple[int, int] | None = None) -> BatchState:
        """The bucket of ``rows`` x ``length``, allocated on first use (evicting the least recently used others,
        never ``keep``: a batch being moved out of it)."""
        key = (rows, length)
        if key in self.states:
            self.states.move_to_end(key)
            return self.states[key]
        cfg = self.lm.config
        need = BatchState.bytes_for(cfg, rows, length, self.head.out_features, self.dtype)
        # the least recently used buckets (and their captured steps) go, to hold at most max_states buckets
        # within the budget
        while (evictable := [k for k in self.states if k != keep]) and (
                len(self.states) >= self.max_states or need + sum(st.nbytes for st in self.states.values()) > budget):
            old = evictable[0]
            del self.states[old]
            self.steps = {k: v for k, v in self.steps.items() if k[:2] != old}
        self.states[key] = BatchState(model_cfg=cfg, batch=rows, length=length, vocab=self.head.out_features,
                                      eos_ids=self.eos_ids, pad_id=self.pad_id, dtype=self.dtype,
                                      device=self.device)
        return self.states[key]

    def _step(self, st: BatchState, flags: Flags, mode: str | None = None):
        """The step callable for this bucket and flags, built and warmed up on first use (before the batch's
        prefill or rows move in: warm-up runs mutate the bucket's buffers). ``mode``: how to build it if it is
        new, instead of the engine's mode (which a failed compile or capture changes for later steps)."""
        key = (st.batch, st.length, flags)
        if key in self.steps:
            return self.steps[key]
        start = time.perf_counter()
        first = mode or self.mode
        for mode in dict.fromkeys((first, "cuda-graph", "eager")) if first != "eager" else ("eager",):
            try:
                fn = build_step(mode, self.lm, self.head, st, flags, compiled=self._compiled,
                                chunk=self.check_every, inductor_tuning=self.inductor_tuning)
                break
            except Exception as exc:  # noqa: BLE001 - a compile/capture failure falls back, loudly
                log.warning("generation engine: %s decode step failed (%s: %s); falling back", mode,
                            type(exc).__name__, str(exc)[:300])
                if mode in COMPILED_MODES:
                    torch._dynamo.reset()
                    self._compiled.clear()
        if mode != first and first == self.mode:
            self.mode = mode
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.warmup_s[f"B{st.batch}xL{st.length}:{mode}:{flags}"] = time.perf_counter() - start
        self.steps[key] = fn
        return fn
