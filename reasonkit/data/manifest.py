"""The download manifest: what was fetched (file, size, sha256, revision) and which archives were fully
extracted, so a second run skips finished work and a user can check their copy against a known revision."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from reasonkit.errors import DataError
from reasonkit.textfile import read_text

MANIFEST_NAME = "reasonkit_manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return {"files": {}, "archives": {}}
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed manifest ({exc.msg} at line {exc.lineno}); delete it to start "
                        "over") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise DataError(f"{path}: expected a manifest object with a 'files' list; delete it to start over")
    data["files"] = {f["file"]: f for f in data["files"] if isinstance(f, dict) and "file" in f}
    data.setdefault("archives", {})
    return data


def save_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename): an interrupted run never leaves a half-written manifest."""
    path = Path(folder) / MANIFEST_NAME
    out = dict(manifest, files=sorted(manifest["files"].values(), key=lambda f: f["file"]),
               updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def record_file(manifest: dict[str, Any], folder: Path, rel: str, revision: str) -> dict[str, Any]:
    """Add or refresh one file's entry; the sha256 is recomputed only when size or mtime changed."""
    stat = (Path(folder) / rel).stat()
    old = manifest["files"].get(rel)
    if old and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
        entry = dict(old, revision=revision)
    else:
        entry = {"file": rel, "size": stat.st_size, "sha256": sha256_file(Path(folder) / rel),
                 "revision": revision, "mtime_ns": stat.st_mtime_ns}
    manifest["files"][rel] = entry
    return entry


def archive_done(manifest: dict[str, Any], folder: Path, rel: str) -> bool:
    """True when ``rel`` was extracted from the same bytes and every member it wrote is still there."""
    done = manifest["archives"].get(rel)
    current = manifest["files"].get(rel)
    if not done or not current or done.get("sha256") != current["sha256"]:
        return False
    base = (Path(folder) / rel).parent
    return all(os.path.lexists(base / m) for m in done.get("members", []))
