"""Paired statistics for comparing two models on the same questions: pure functions on result records.

Conventions (pinned by tests/test_compare.py against hand-computed values):
- Pairing is by question id, on the questions both runs recorded. Questions only one side recorded are counted
  (``only_a``/``only_b``) and reported, never silently dropped into one side's accuracy.
- An error record (missing or broken clip) counts as wrong, as in ``reasonkit score``.
- Several seeds: a question's score is its mean correctness over that model's seeds (0, 1/k, ..., 1); the accuracy
  difference and its CI are computed on those means. McNemar needs 0/1 outcomes, so it is run per seed pair
  (seeds with equal values paired first, the rest in order) and the headline p is the largest of them: a
  difference is called significant only when every seed pair says so.
- The CI of a difference is a percentile bootstrap that resamples whole videos (questions on one clip are not
  independent), the two models' answers to a video staying together (paired). The macro CI resamples within
  each dataset and averages the per-dataset differences, like the paper's "Avg.".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOOTSTRAP_REPS = 2000


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: the binomial test of ``a_only`` successes in ``a_only + b_only``
    discordant pairs at p = 1/2 (twice the smaller tail, capped at 1). No discordant pairs → 1.0."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass
class Paired:
    """Per-question scores of two models on the questions both recorded (``ids`` sorted), with the clip of each."""

    ids: list[str]
    videos: list[str]
    a: np.ndarray  # mean correctness over A's seeds, per question
    b: np.ndarray
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    seed_pairs: list[tuple[dict[str, bool], dict[str, bool]]] = field(default_factory=list)

    @property
    def diff(self) -> np.ndarray:
        return self.b - self.a


def correctness(records: list[dict[str, Any]]) -> dict[str, bool]:
    """id → correct for one seed's records (the first record of an id wins; error records are wrong)."""
    out: dict[str, bool] = {}
    for r in records:
        out.setdefault(r["id"], bool(r.get("correct")) and r.get("status", "ok") == "ok")
    return out


def pair_runs(a_seeds: dict[int, list[dict[str, Any]]], b_seeds: dict[int, list[dict[str, Any]]]) -> Paired:
    """Pair two models' records (seed → records of one dataset) by question id."""
    a_runs = {s: correctness(r) for s, r in sorted(a_seeds.items())}
    b_runs = {s: correctness(r) for s, r in sorted(b_seeds.items())}
    # A question counts as recorded by a model when every one of its seeds recorded it.
    a_ids = set.intersection(*(set(r) for r in a_runs.values())) if a_runs else set()
    b_ids = set.intersection(*(set(r) for r in b_runs.values())) if b_runs else set()
    ids = sorted(a_ids & b_ids)
    videos = _videos([*a_seeds.values(), *b_seeds.values()])
    a = np.array([np.mean([run[i] for run in a_runs.values()]) for i in ids], dtype=float)
    b = np.array([np.mean([run[i] for run in b_runs.values()]) for i in ids], dtype=float)
    return Paired(ids=ids, videos=[videos.get(i, i) for i in ids], a=a, b=b,
                  only_a=sorted(a_ids - b_ids), only_b=sorted(b_ids - a_ids),
                  seed_pairs=_seed_pairs(a_runs, b_runs))


def _videos(runs: list[list[dict[str, Any]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for records in runs:
        for r in records:
            out.setdefault(r["id"], r.get("video_id") or r["id"])
    return out


def _seed_pairs(a_runs: dict[int, dict[str, bool]], b_runs: dict[int, dict[str, bool]]):
    common = [s for s in a_runs if s in b_runs]
    rest_a = [s for s in a_runs if s not in common]
    rest_b = [s for s in b_runs if s not in common]
    return [(a_runs[s], b_runs[s]) for s in common] + [(a_runs[x], b_runs[y]) for x, y in zip(rest_a, rest_b)]


def discordant(a: dict[str, bool], b: dict[str, bool], ids: list[str]) -> tuple[int, int]:
    """(right only for A, right only for B) on ``ids``."""
    return (sum(a[i] and not b[i] for i in ids), sum(b[i] and not a[i] for i in ids))


def cluster_bootstrap(values: np.ndarray, clusters: list[str], *, reps: int = BOOTSTRAP_REPS,
                      seed: int = 0) -> np.ndarray:
    """``reps`` bootstrap replicates of mean(values), resampling whole clusters with replacement (each replicate:
    sum of the drawn clusters' values / number of questions in them)."""
    index: dict[str, int] = {}
    codes = np.array([index.setdefault(c, len(index)) for c in clusters], dtype=int)
    if len(codes) == 0:
        return np.full(reps, np.nan)
    sums = np.bincount(codes, weights=values, minlength=len(index))
    counts = np.bincount(codes, minlength=len(index)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(index), size=(reps, len(index)))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1)


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)


def compare_dataset(paired: Paired, *, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict[str, Any]:
    """One dataset's comparison of B against A: accuracies on the paired questions, difference (B − A) with its
    clustered bootstrap CI, discordant counts and exact McNemar p; accuracies and differences in percent."""
    n = len(paired.ids)
    replicates = cluster_bootstrap(paired.diff, paired.videos, reps=reps, seed=seed)
    lo, hi = percentile_ci(replicates)
    per_seed = [discordant(a, b, paired.ids) for a, b in paired.seed_pairs]
    p_values = [mcnemar_exact(x, y) for x, y in per_seed]
    return {
        "paired": n, "only_a": len(paired.only_a), "only_b": len(paired.only_b),
        "acc_a": 100 * float(paired.a.mean()) if n else float("nan"),
        "acc_b": 100 * float(paired.b.mean()) if n else float("nan"),
        "diff": 100 * float(paired.diff.mean()) if n else float("nan"),
        "ci95_low": 100 * lo, "ci95_high": 100 * hi,
        "a_only_right": per_seed[0][0] if len(per_seed) == 1 else None,
        "b_only_right": per_seed[0][1] if len(per_seed) == 1 else None,
        "mcnemar_p": max(p_values) if p_values else float("nan"),
        "mcnemar_p_per_seed": p_values, "seed_pairs": len(per_seed),
        "_replicates": replicates,
    }


def macro(rows: list[dict[str, Any]], pooled: list[Paired]) -> dict[str, Any]:
    """Macro over datasets: mean of the per-dataset accuracies and differences; the CI averages the datasets'
    bootstrap replicates (a stratified bootstrap); McNemar on all paired questions pooled (the largest p over
    seed pairs, as per dataset)."""
    reps = np.mean([r["_replicates"] for r in rows], axis=0)
    lo, hi = percentile_ci(reps)
    n_pairs = min(len(p.seed_pairs) for p in pooled) if pooled else 0
    p_values = []
    for k in range(n_pairs):
        x = y = 0
        for p in pooled:
            dx, dy = discordant(*p.seed_pairs[k], p.ids)
            x, y = x + dx, y + dy
        p_values.append(mcnemar_exact(x, y))
    return {
        "paired": sum(r["paired"] for r in rows), "only_a": sum(r["only_a"] for r in rows),
        "only_b": sum(r["only_b"] for r in rows),
        "acc_a": float(np.mean([r["acc_a"] for r in rows])), "acc_b": float(np.mean([r["acc_b"] for r in rows])),
        "diff": float(np.mean([r["diff"] for r in rows])), "ci95_low": 100 * lo, "ci95_high": 100 * hi,
        "a_only_right": None, "b_only_right": None,
        "mcnemar_p": max(p_values) if p_values else float("nan"), "mcnemar_p_per_seed": p_values,
        "seed_pairs": n_pairs,
    }


def flips(paired: Paired) -> dict[str, list[str]]:
    """Question ids whose (seed-mean) score went up or down from A to B, largest changes first."""
    order = np.argsort(-np.abs(paired.diff), kind="stable")
    gained = [paired.ids[i] for i in order if paired.diff[i] > 0]
    lost = [paired.ids[i] for i in order if paired.diff[i] < 0]
    return {"gained": gained, "lost": lost}

