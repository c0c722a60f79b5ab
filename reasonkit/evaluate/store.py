"""Append-only JSONL result store: one record per question, flushed and fsynced per batch.

Layout: ``<results_dir>/<model_slug>/<benchmark>/<answer_type>/seed<seed>.jsonl`` with a ``.manifest.json``
beside it. A crash can leave at most a partial last line; it is cut off on reopen, so a resumed run neither
loses nor duplicates a record. A data-parallel run (reasonkit/evaluate/shard.py) writes one file per rank under
``seed<seed>.shards/``; reading a store always merges the main file and every shard file.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError


def model_slug(model: str, fingerprint: str) -> str:
    """``nvidia/Cosmos-Reason1-7B`` → ``nvidia--Cosmos-Reason1-7B``; a local folder → ``<name>-<hash8>`` (two
    different checkpoints both called ``final`` must not share results)."""
    path = Path(model)
    if path.is_dir():
        return f"{_safe(path.resolve().name)}-{fingerprint[:8]}"
    return _safe(model.replace("/", "--"))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


class ResultStore:
    @classmethod
    def for_run(cls, results_dir: Path | str, model: str, fingerprint: str, benchmark: str, answer_type: str,
                seed: int) -> ResultStore:
        """The store of one (model, benchmark, answer type, seed): the layout in the module docstring."""
        return cls(Path(results_dir) / model_slug(model, fingerprint) / benchmark / answer_type / f"seed{seed}.jsonl")

    def __init__(self, path: Path, *, shard: int | None = None):
        """``shard``: this process appends to its own ``<stem>.shards/rank<shard>.jsonl`` (data-parallel eval)."""
        self.path = Path(path)
        self.manifest_path = self.path.with_suffix(".manifest.json")
        self.shard_dir = self.path.with_suffix(".shards")
        self.write_path = self.path if shard is None else self.shard_dir / f"rank{shard:05d}.jsonl"

    # ------------------------------------------------------------------ reading
    def files(self) -> list[Path]:
        """The main file (if written) and the shard files of data-parallel runs, in a fixed order."""
        main = [self.path] if self.path.exists() else []
        return main + (sorted(self.shard_dir.glob("rank*.jsonl")) if self.shard_dir.is_dir() else [])

    def records(self) -> list[dict[str, Any]]:
        """Complete records of every file, in file order (a torn last line from a crash is ignored)."""
        return [r for path in self.files() for r in _read_records(path)]

    def recorded_ids(self) -> set[str]:
        return {r["id"] for r in self.records()}

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        from reasonkit.textfile import read_text

        try:
            return json.loads(read_text(self.manifest_path))
        except json.JSONDecodeError as exc:
            raise ReasonkitError(f"{self.manifest_path}: malformed JSON at line {exc.lineno}") from None

    # ------------------------------------------------------------------ writing
    def open(self, manifest: dict[str, Any], *, resume: bool) -> set[str]:
        """Prepare for appending; returns the ids already recorded (empty unless resuming).

        Without resume an existing file is moved aside (never deleted). Resuming results of a different model or
        config is refused: records from two setups must not mix in one file.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.manifest()
        if self.files() and not resume:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for path in (self.path, self.shard_dir, self.manifest_path):
                if path.exists():
                    path.rename(path.with_name(f"{path.name}.{stamp}.bak"))
            old = None
        if old is not None and self.files():
            for key in ("model_fingerprint", "config_hash"):
                if old.get(key) != manifest.get(key):
                    raise ReasonkitError(
                        f"{self.path}: recorded with a different {key.replace('_', ' ')} "
                        f"({old.get(key)} vs {manifest.get(key)}){_changed(old, manifest, key)}; use --no-resume "
                        f"(keeps the old file as .bak) or another --results-dir"
                    )
        self._cut_torn_line()
        _write_atomic(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
        return self.recorded_ids() if resume else set()

    def drop_error_records(self) -> int:
        """Rewrite the file without its error records (atomically), so they are run again and replaced rather
        than duplicated; returns how many were dropped."""
        dropped = 0
        for path in self.files():
            records = _read_records(path)
            kept = [r for r in records if r.get("status") != "error"]
            if len(kept) != len(records):
                _write_atomic(path, "".join(_line(r) for r in kept))
            dropped += len(records) - len(kept)
        return dropped

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(_line(r) for r in records)
        self.write_path.parent.mkdir(parents=True, exist_ok=True)
        with self.write_path.open("a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _cut_torn_line(self) -> None:
        for path in self.files():
            with path.open("rb+") as handle:
                data = handle.read()
                if data and not data.endswith(b"\n"):
                    handle.truncate(data.rfind(b"\n") + 1)


def _read_records(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # unreachable for our own writes: every write ends with a newline
    return out


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def _changed(old: dict[str, Any], new: dict[str, Any], key: str) -> str:
    """': changed generation.temperature, frames.fps' when both manifests carry the settings that make the hash."""
    from reasonkit.config import changed_keys

    if key != "config_hash" or not isinstance(old.get("identity"), dict):
        return ""
    keys = changed_keys(old["identity"], new.get("identity") or {})
    return f": changed {', '.join(keys)}" if keys else ""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def find_stores(results_dir: Path) -> list[ResultStore]:
    """One store per run: its main file and/or its folder of shard files (a data-parallel run may have only the
    latter)."""
    mains = set(Path(results_dir).rglob("seed*.jsonl"))
    mains |= {d.with_suffix(".jsonl") for d in Path(results_dir).rglob("seed*.shards") if d.is_dir()}
    return [ResultStore(p) for p in sorted(mains)]
