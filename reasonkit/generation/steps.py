"""The decode step and the ways the engine runs it: eager, compiled by inductor, captured as CUDA graphs.

A built step is a callable ``step(count)`` that advances every row of its bucket by ``count`` tokens, reading and
writing only the bucket's buffers. The modes:

- ``eager``: the step's Python each token (the CPU);
- ``reduce-overhead`` / ``dynamic``: ``torch.compile(mode="reduce-overhead")`` — inductor kernels replayed through
  torch's CUDA-graph trees, one call (guards, input checks) per token; ``dynamic`` compiles once for every bucket
  size;
- ``compiled-graph``: the same inductor kernels, captured by us as two plain CUDA graphs — one token, and
  ``chunk`` tokens back to back — so the host launches one graph per ``chunk`` tokens. At small batches a step's
  GPU work is short enough that the per-call host cost of the modes above (guards, graph-tree bookkeeping) leaves
  the GPU waiting (bench/RESULTS.md); the engine's default on CUDA;
- ``cuda-graph``: the eager step captured as one CUDA graph (no compile; eager kernels).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from reasonkit.generation.sampling import Flags, select_tokens
from reasonkit.generation.state import BatchState

STEP_MODES = ("eager", "reduce-overhead", "dynamic", "compiled-graph", "cuda-graph")
COMPILED_MODES = ("reduce-overhead", "dynamic", "compiled-graph")  # the modes that go through torch.compile
Step = Callable[[int], None]


def decode_step(lm, head, st: BatchState, flags: Flags) -> None:
    """One token for every row of the bucket; reads and writes only ``st``'s buffers (graph-capturable)."""
    mask = st.decode_mask()
    embeds = lm.embed_tokens(st.tokens[:, None])
    hidden = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=st.positions, past_key_values=st.cache,
                use_cache=True).last_hidden_state[:, -1]
    tokens, logprobs = select_tokens(head(hidden), st, flags)
    st.record(tokens, logprobs)
    st.positions.add_(1)
    st.cache.write_pos.add_(1)


def repeated(one: Callable[[], None]) -> Step:
    def step(count: int = 1) -> None:
        for _ in range(count):
            one()
    return step


def compiled_decode_step(mode: str, cache: dict):
    """The process's torch.compile of :func:`decode_step` for ``mode`` (one per mode; each bucket and flags is a
    graph of it)."""
    if mode not in cache:
        limits = torch._dynamo.config
        for name in ("cache_size_limit", "recompile_limit"):  # one graph per bucket and flags
            if hasattr(limits, name):
                setattr(limits, name, max(getattr(limits, name), 64))
        if mode == "compiled-graph":
            cache[mode] = torch.compile(decode_step)  # inductor's default mode: no CUDA graphs of its own
        else:
            cache[mode] = torch.compile(decode_step, mode="reduce-overhead", dynamic=mode == "dynamic")
    return cache[mode]


def capture(one: Callable[[], None], count: int, pool=None) -> torch.cuda.CUDAGraph:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        for _ in range(count):
            one()
    return graph


def build_step(mode: str, lm, head, st: BatchState, flags: Flags, *, compiled: dict, chunk: int,
               inductor_tuning: bool) -> Step:
    """Build (compile, capture, warm up: this mutates ``st``'s buffers) the step of one bucket and flags;
    ``chunk``: the tokens one ``compiled-graph`` replay advances (the engine's check interval)."""
    def eager() -> None:
        decode_step(lm, head, st, flags)
    if mode == "eager":
        return repeated(eager)
    one = eager
    if mode in COMPILED_MODES:
        compiled_step = compiled_decode_step(mode, compiled)

        def one() -> None:
            compiled_step(lm, head, st, flags)
        import torch._inductor.config as inductor

        # coordinate descent re-tunes each generated kernel's launch config at its real shape: the batch-1 step
        # is a chain of GEMVs and small fused kernels where the heuristic defaults leave bandwidth unused
        with inductor.patch(coordinate_descent_tuning=inductor_tuning):
            for _ in range(3 if mode != "compiled-graph" else 1):  # compile (torch's graphs: record, replay)
                one()
        if mode != "compiled-graph":
            return repeated(one)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # allocator and kernel selection settle outside the capture
            one()
    torch.cuda.current_stream().wait_stream(stream)
    single = capture(one, 1)
    if mode == "cuda-graph" or chunk <= 1:
        return repeated(single.replay)
    many = capture(one, chunk, pool=single.pool())  # the same memory pool: one step's intermediates, reused

    def step(count: int = 1) -> None:
        if count == chunk:
            many.replay()
        else:
            for _ in range(count):
                single.replay()
    return step
