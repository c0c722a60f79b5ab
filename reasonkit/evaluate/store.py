"""Append-only JSONL result store: one record per question, flushed and fsynced per batch.

Layout: ``<results_dir>/<model_slug>/<benchmark>/<answer_type>/seed<seed>.jsonl`` with a ``.manifest.json``
beside it. A crash can leave at most a partial last line; it is cut off on reopen, so a resumed run neither
loses nor duplicates a record.
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
    def __init__(self, path: Path):
        self.path = Path(path)
        self.manifest_path = self.path.with_suffix(".manifest.json")

    # ------------------------------------------------------------------ reading
    def records(self) -> list[dict[str, Any]]:
        """Complete records in file order (a torn last line from a crash is ignored)."""
        if not self.path.exists():
            return []
        out = []
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # unreachable for our own writes: every write ends with a newline
        return out

    def recorded_ids(self) -> set[str]:
        return {r["id"] for r in self.records()}

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    # ------------------------------------------------------------------ writing
    def open(self, manifest: dict[str, Any], *, resume: bool) -> set[str]:
        """Prepare for appending; returns the ids already recorded (empty unless resuming).

        Without resume an existing file is moved aside (never deleted). Resuming results of a different model or
        config is refused: records from two setups must not mix in one file.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.manifest()
        if self.path.exists() and not resume:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.path.rename(self.path.with_name(f"{self.path.name}.{stamp}.bak"))
            if self.manifest_path.exists():
                self.manifest_path.rename(self.manifest_path.with_name(f"{self.manifest_path.name}.{stamp}.bak"))
            old = None
        if old is not None and self.path.exists():
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
        records = self.records()
        kept = [r for r in records if r.get("status") != "error"]
        if len(kept) != len(records):
            _write_atomic(self.path, "".join(_line(r) for r in kept))
        return len(records) - len(kept)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(_line(r) for r in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _cut_torn_line(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)


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
    return [ResultStore(p) for p in sorted(Path(results_dir).rglob("seed*.jsonl"))]
