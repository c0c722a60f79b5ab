"""Resolve and sanity-check a model reference (hub id or local folder) before any heavy loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from reasonkit.errors import ReasonkitError

WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")


def check_model_dir(model: str) -> None:
    """A local folder must hold a config and weights; hub ids are left to huggingface_hub."""
    path = Path(model)
    looks_local = path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if not looks_local:
        return
    if not path.is_dir():
        raise ReasonkitError(f"model folder {model} not found")
    if not (path / "config.json").is_file():
        raise ReasonkitError(f"model folder {model} has no config.json (expected a save_pretrained folder)")
    if not any(next(path.glob(p), None) for p in WEIGHT_PATTERNS):
        raise ReasonkitError(f"model folder {model} has no weights (*.safetensors or pytorch_model*.bin)")


def model_fingerprint(model: str) -> str:
    """A short hash identifying the weights: sha256 over weight-file names and sizes plus config.json for a local
    folder (cheap for 15 GB checkpoints); the hub id for remote models (the manifest records the revision)."""
    path = Path(model)
    if not path.is_dir():
        return hashlib.sha256(model.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(json.dumps(json.loads(config.read_text()), sort_keys=True).encode())
    for pattern in WEIGHT_PATTERNS:
        for file in sorted(path.glob(pattern)):
            digest.update(f"{file.name}:{file.stat().st_size}".encode())
            with file.open("rb") as handle:  # the first MiB distinguishes retrained weights of equal size
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def wrap_load_error(model: str, exc: Exception) -> ReasonkitError:
    text = " ".join(str(exc).split())
    return ReasonkitError(f"cannot load model {model!r}: {text[:300]}")
