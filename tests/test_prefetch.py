"""The one background-prefetch helper eval, SFT and GRPO read their frames through."""

from __future__ import annotations

import threading
import time

import pytest

from reasonkit.prefetch import prefetch


def test_results_come_in_order_with_work_done_ahead():
    started: list[int] = []

    def work(x):
        started.append(x)
        time.sleep(0.01 * (5 - x % 5))  # later items finish first: order must still hold
        return x * x

    results = []
    for x in prefetch(work, range(10), ahead=3):
        results.append(x)
        if len(results) == 1:
            time.sleep(0.1)
            assert started[:4] == [0, 1, 2, 3]  # item 0 consumed, 3 more already in flight
            assert len(started) <= 5
    assert results == [x * x for x in range(10)]


def test_an_error_is_raised_where_its_result_is_consumed():
    def work(x):
        if x == 2:
            raise ValueError("bad clip 2")
        return x

    got = []
    with pytest.raises(ValueError, match="bad clip 2"):
        for x in prefetch(work, range(5), ahead=2):
            got.append(x)
    assert got == [0, 1]


def test_leaving_early_cancels_work_not_started():
    calls = []
    gate = threading.Event()

    def work(x):
        calls.append(x)
        gate.wait(1)
        return x

    stream = prefetch(work, range(100), ahead=4)
    gate.set()
    assert next(stream) == 0
    stream.close()
    assert len(calls) <= 6
