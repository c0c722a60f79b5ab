"""Work done ahead in background threads, in order: clips decode while the model computes (PyAV releases the GIL
while decoding). Eval, SFT and GRPO all read their frames through ``prefetch``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def prefetch(fn: Callable[[In], Out], items: Iterable[In], *, ahead: int, workers: int = 1) -> Iterator[Out]:
    """``fn(item)`` for each item, yielded in order, with up to ``ahead`` items in flight beyond the one being
    consumed. An exception in ``fn`` is raised where its result is consumed. Leaving the loop early cancels the
    work not yet started."""
    items = iter(items)
    pool = ThreadPoolExecutor(max(1, workers))
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                break
        while pending:
            result = pending.popleft().result()
            for item in items:  # refill to `ahead + 1` in flight before handing the result over
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
