"""The statistics behind `reasonkit score` and the report, as pure functions of result records: accuracy over every
question (unscored ones count as wrong), bootstrap CIs that resample whole videos, per-type accuracy, mean/std."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

BOOTSTRAP_REPS = 1000


def accuracy(records: list[dict[str, Any]], n_total: int) -> float:
    """Correct / all questions of the benchmark: unscored questions count as wrong (the denominator never
    shrinks silently; coverage is reported beside it)."""
    return sum(bool(r.get("correct")) for r in records) / n_total if n_total else float("nan")


def bootstrap_ci(records: list[dict[str, Any]], *, reps: int = BOOTSTRAP_REPS, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of accuracy, resampling whole videos (questions on one clip are not independent)."""
    by_video: dict[str, list[int]] = defaultdict(list)
    for r in records:
        by_video[r.get("video_id", r["id"])].append(int(bool(r.get("correct"))))
    clusters = [(sum(v), len(v)) for v in by_video.values()]
    if not clusters:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    stats = []
    for _ in range(reps):
        draw = [clusters[rng.randrange(len(clusters))] for _ in clusters]
        stats.append(sum(c for c, _ in draw) / sum(n for _, n in draw))
    stats.sort()
    lo = stats[int((1 - level) / 2 * reps)]
    hi = stats[min(reps - 1, int((1 + level) / 2 * reps))]
    return lo, hi


def dedup(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per question id (the first written), guarding against a hand-merged file."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        seen.setdefault(r["id"], r)
    return list(seen.values())


def accuracy_by_task(records: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy per question type (``meta["task"]``, e.g. synthphys' count or direction; "-" without one) and over
    all questions ("all"). Unscored questions count as wrong, as in :func:`accuracy`."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in dedup(records):
        groups[(r.get("meta") or {}).get("task", "-")].append(bool(r.get("correct")))
    out = {task: sum(hits) / len(hits) for task, hits in sorted(groups.items())}
    out["all"] = sum(map(sum, groups.values())) / max(1, sum(map(len, groups.values())))
    return out


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def std(xs: list[float]) -> float:
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
