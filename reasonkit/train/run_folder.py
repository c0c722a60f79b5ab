"""One run per output folder: a fresh run never writes into another run's folder, and a resumed run continues
the recipe it was started with.

- A fresh run (``train.resume = false``) into a folder that already holds a run is refused, unless
  ``train.overwrite = true``: then the old run is moved aside to ``<output_dir>.replaced-<time>`` (never deleted,
  never mixed with the new one).
- A resumed run compares its recipe with the ``recipe.json`` the run saved and refuses keys that change what is
  being trained. :data:`RESUME_SAFE_KEYS` lists the keys that may change (length of the run, logging, checkpoint
  cadence, uploads); the README repeats the list.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from reasonkit.config import changed_keys, flatten
from reasonkit.errors import ConfigError

# Dotted recipe keys (or section prefixes ending in '.') that may differ between a run and its resume.
RESUME_SAFE_KEYS = (
    "train.resume", "train.overwrite", "train.max_steps", "train.epoch", "train.output_dir", "train.log_freq",
    "train.ckpt.save_freq", "train.ckpt.max_keep", "train.ckpt.save_mode", "train.ckpt.export_safetensors",
    "train.ckpt.upload_hf", "train.ckpt.hf_repo_name", "train.ckpt.upload_s3", "train.ckpt.s3_bucket",
    "train.ckpt.s3_prefix", "train.ckpt.upload", "train.train_policy.dataloader_num_workers", "logging.",
)


def claim(recipe, *, is_main: bool = True, world: int = 1) -> Path | None:
    """Check (and for ``overwrite``, clear) ``recipe.train.output_dir`` before a run writes into it: the CLI
    calls this before starting any process, every trainer again when its run starts. Returns where a replaced
    run was moved."""
    from reasonkit.secrets import redact
    from reasonkit.train.checkpoint import CheckpointManager

    t = recipe.train
    out = Path(t.output_dir)
    if not t.resume:
        return prepare_fresh(out, overwrite=t.overwrite, is_main=is_main)
    checkpoint = CheckpointManager(out / "checkpoints", save_freq=1).resolve(t.resume)
    saved = checkpoint.parent.parent / "recipe.json" if checkpoint is not None else out / "recipe.json"
    safe = RESUME_SAFE_KEYS
    if checkpoint is not None and _same_global_batch(checkpoint, t.train_batch_per_replica, world):
        safe = (*safe, "train.train_batch_per_replica")  # another number of processes, the same global batch
    check_resume(saved, redact(recipe.model_dump(mode="json")), safe=safe)
    return None


def _same_global_batch(checkpoint: Path, batch: int, world: int) -> bool:
    from reasonkit.train.checkpoint import read_marker

    meta = (read_marker(checkpoint) or {}).get("meta", {})
    saved_world, saved_batch = meta.get("world_size"), meta.get("train_batch_per_replica")
    return saved_world is not None and saved_world != world and saved_world * (saved_batch or 0) == world * batch


def holds_a_run(out: Path) -> bool:
    """True when ``out`` exists and is not empty (a previous run's recipe, logs, checkpoints or export)."""
    return out.is_dir() and any(out.iterdir())


def prepare_fresh(out: Path, *, overwrite: bool, is_main: bool) -> Path | None:
    """Refuse a fresh run into a folder holding a run, or move that run aside when ``overwrite``; returns where
    the old run went (None when there was none)."""
    if not holds_a_run(out):
        return None
    if not overwrite:
        raise ConfigError(
            f"{out}: output_dir already holds a run; continue it with --set train.resume=true, choose another "
            f"train.output_dir, or --set train.overwrite=true to move the old run aside")
    aside = out.with_name(f"{out.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside, n = out.with_name(f"{out.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
    if is_main:
        out.rename(aside)
    return aside


def check_resume(saved_recipe: Path, current: dict[str, Any], *, safe: tuple[str, ...] = RESUME_SAFE_KEYS) -> None:
    """Refuse resuming with a recipe that differs from the saved one in a key outside ``safe``."""
    if not saved_recipe.is_file():
        return
    try:
        saved = json.loads(saved_recipe.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{saved_recipe}: the run's saved recipe is unreadable ({exc})") from None
    # Round-trip through JSON so tuples compare equal to the lists the saved file holds.
    changed = changed_keys(saved, json.loads(json.dumps(current, default=str)), safe=safe)
    if changed:
        shown = ", ".join(f"{k} ({_get(saved, k)!r} -> {_get(current, k)!r})" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ConfigError(
            f"{saved_recipe}: resuming with a changed recipe: {shown}{more}; resume with the recipe the run "
            f"started with, or start a new run (another train.output_dir)")


def _get(data: dict[str, Any], dotted: str) -> Any:
    return flatten(data).get(dotted, "(unset)")
