"""Resolve and sanity-check a model reference (hub id or local folder) before any heavy loading."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from reasonkit.errors import ReasonkitError
from reasonkit.textfile import read_text

WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")


def check_model_dir(model: str) -> None:
    """A local folder must hold a config and weights; hub ids are left to huggingface_hub."""
    path = Path(model)
    looks_local = path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if not looks_local:
        check_hub_id(model)
        return
    if not path.is_dir():
        raise ReasonkitError(f"model folder {model} not found")
    if not (path / "config.json").is_file():
        raise ReasonkitError(f"model folder {model} has no config.json (expected a save_pretrained folder)")
    if not any(next(path.glob(p), None) for p in WEIGHT_PATTERNS):
        raise ReasonkitError(f"model folder {model} has no weights (*.safetensors or pytorch_model*.bin)")


_HUB_CHECKED: set[str] = set()


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def check_hub_id(model: str) -> None:
    """Fail in seconds, naming the id, where transformers would retry every file for minutes: offline and not in
    the cache, hub unreachable (first connection error) and not in the cache, or no such repo on the hub. An
    unreachable hub with the model cached switches to offline mode, so loading reads the cache at once."""
    if model in _HUB_CHECKED:
        return
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError as exc:
        raise ReasonkitError(f"model {model!r} is neither a local folder nor a Hugging Face Hub id ({exc})") from None
    cached = _in_hub_cache(model)
    if constants.HF_HUB_OFFLINE:
        if not cached:
            raise ReasonkitError(f"model {model!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
                                 "and the hub is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE): check the id, or "
                                 "download it while online")
    else:
        try:
            model_info(model, timeout=constants.HF_HUB_ETAG_TIMEOUT)  # one request, no retries
        except RepositoryNotFoundError:
            if not cached:
                raise ReasonkitError(f"model {model!r} not found on the Hugging Face Hub (mistyped id? a private "
                                     "or gated repo needs `hf auth login` or HF_TOKEN)") from None
        except HfHubHTTPError:
            pass  # the hub answered (a bad revision, a server error): from_pretrained reports it with context
        except Exception as exc:  # the HTTP client's transport errors (connect, timeout, DNS): its own classes
            if not cached:
                raise ReasonkitError(f"cannot load model {model!r}: the Hugging Face Hub ({constants.ENDPOINT}) is "
                                     f"unreachable ({type(exc).__name__}) and the model is not in the local "
                                     "cache") from None
            print(f"the Hugging Face Hub is unreachable; loading {model} from the local cache", file=sys.stderr)
            os.environ["HF_HUB_OFFLINE"] = "1"  # subprocesses (vLLM workers) too
            constants.HF_HUB_OFFLINE = True  # read at import time; huggingface_hub.is_offline_mode() returns it
    _HUB_CHECKED.add(model)


def model_fingerprint(model: str) -> str:
    """A short hash identifying the weights: sha256 over weight-file names and sizes plus config.json for a local
    folder (cheap for 15 GB checkpoints); the hub id for remote models (the manifest records the revision)."""
    path = Path(model)
    if not path.is_dir():
        return hashlib.sha256(model.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(json.dumps(json.loads(read_text(config, ReasonkitError)), sort_keys=True).encode())
    for pattern in WEIGHT_PATTERNS:
        for file in sorted(path.glob(pattern)):
            digest.update(f"{file.name}:{file.stat().st_size}".encode())
            with file.open("rb") as handle:  # the first MiB distinguishes retrained weights of equal size
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def wrap_load_error(model: str, exc: Exception) -> ReasonkitError:
    text = " ".join(str(exc).split())
    return ReasonkitError(f"cannot load model {model!r}: {text[:300]}")


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype name weights load in: ``auto`` is bf16 on CUDA and fp32 on CPU (where bf16 matmuls are slow and
    inexact); any other name stays."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


def load_pretrained(model: str, *, dtype, revision: str | None = None, attn_implementation: str | None = None,
                    with_processor: bool = True):
    """``(model, processor)`` through the public loading path (Auto classes + from_pretrained), shared by the
    backends, the trainers' policy and GRPO's reference: the reference is checked first and a loading error is one
    line naming it. ``processor`` is None without ``with_processor``; the model stays where from_pretrained put it."""
    check_model_dir(model)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs = {"dtype": dtype, "revision": revision}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        processor = AutoProcessor.from_pretrained(model, revision=revision) if with_processor else None
        net = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise wrap_load_error(model, exc) from None
    return net, processor


# model.* keys the eval runner uses itself, whatever the backend
RUNNER_KEYS = frozenset({"model_name", "backend", "price_input_per_mtok", "price_output_per_mtok"})


def backend_options(name: str, factory, model_section, *, explicit: tuple[str, ...] = (), **extra) -> dict:
    """The ``model.*`` options (and ``extra``, e.g. the seed) backend ``name`` takes: the keyword parameters of its
    factory. A key given on the command line (``explicit``, dotted) that the backend does not take is refused, never
    dropped; a preset's keys meant for other backends (``dtype`` for an API model) do not apply and are left out."""
    import inspect

    from reasonkit.errors import ConfigError

    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    chosen = {k: getattr(model_section, k) for k in type(model_section).model_fields if k not in RUNNER_KEYS}
    given = {key.removeprefix("model.") for key in explicit if key.startswith("model.")}
    refused = [k for k in chosen if k in given and k not in params and not accepts_any]
    if refused:
        takes = sorted(k for k in chosen if k in params) or ["(none)"]
        raise ConfigError(f"model.{refused[0]}: backend '{name}' does not take this option (its model.* options: "
                          f"{', '.join(takes)})")
    options = {k: v for k, v in chosen.items() if k in params or accepts_any}
    return options | {k: v for k, v in extra.items() if k in params or accepts_any}
