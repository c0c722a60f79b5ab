"""Training data every trainer shares: rows from the dataset plugin, the seeded per-rank epoch order, and a
row's clip decoded with the recipe's frame spec."""

from __future__ import annotations

import math
import random
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.train.recipe import Recipe
from reasonkit.types import Frames, FrameSpec


def load_rows(recipe: Recipe) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training rows and held-out rows (``test_size`` last rows) from the dataset plugin."""
    from reasonkit.plugins import get_dataset

    policy = recipe.train.train_policy
    spec = policy.dataset
    column = policy.conversation_column_name if policy.type == "sft" else policy.prompt_column_name
    rows = list(get_dataset(spec.name)(spec.path, subset=spec.subset, split=spec.split, column=column))
    if spec.limit:
        rows = rows[: spec.limit]
    held_out = rows[len(rows) - spec.test_size:] if spec.test_size else []
    rows = rows[: len(rows) - spec.test_size] if spec.test_size else rows
    if not rows:
        raise ReasonkitError(f"dataset '{spec.name}' ({spec.path}) has no training rows")
    return rows, held_out


def epoch_order(n: int, *, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[int]:
    """This rank's row indices for one epoch: a seeded shuffle, split across ranks, wrapped around so every
    rank runs the same whole number of batches (no row is dropped; a few repeat)."""
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    per_rank = math.ceil(n / world)
    per_rank = math.ceil(per_rank / batch) * batch
    order = (order * math.ceil(per_rank * world / n + 1))[: per_rank * world]
    return order[rank::world]


def decode(row: dict[str, Any], spec: FrameSpec, blank: bool = False) -> Frames | None:
    """The row's clip under ``spec`` (None for a text-only row); thread-safe, so trainers decode ahead in threads.
    ``blank``: the ablation that keeps shapes and timing but no visual information."""
    from reasonkit.media import load_frames

    if row.get("video") is None:
        return None
    frames = load_frames(row["video"], spec)
    if blank:
        frames.array = frames.array * 0
    return frames


def split_step(encoded: list[Any], n_micro: int, *, by_length: bool) -> list[list[Any]]:
    """One optimizer step's encoded samples (``None`` for a dropped one) as ``n_micro`` micro-batches, in order,
    or with ``by_length`` sorted longest first so each micro-batch holds samples of similar length and little
    padding is computed. The step's samples are the same either way (only their grouping changes), so resume
    positions and the epoch order do not depend on it. A micro-batch may come back empty (every sample in it was
    dropped): the trainer still steps, with zero weight, to keep ranks and accumulation in step."""
    size = math.ceil(len(encoded) / n_micro)
    if by_length:
        kept = sorted((e for e in encoded if e is not None), key=lambda e: -e["input_ids"].shape[1])
        size = math.ceil(len(kept) / n_micro) if kept else 1
        return [kept[i * size:(i + 1) * size] for i in range(n_micro)]
    return [[e for e in encoded[i * size:(i + 1) * size] if e is not None] for i in range(n_micro)]
