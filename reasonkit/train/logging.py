"""Experiment logging for trainers: one small interface, `console`, `jsonl` and `wandb` implementations.

Every config that leaves the process (tracker, saved file) goes through :func:`reasonkit.secrets.redact` here,
so trainers cannot forget it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from reasonkit.errors import ConfigError
from reasonkit.secrets import redact, scrub_text


class Logger(Protocol):
    def log(self, metrics: dict[str, Any], step: int) -> None: ...

    def log_config(self, config: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _scalar(value: Any) -> Any:
    """Plain python numbers from tensors / numpy scalars (``.item()``), everything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def save_config(config: dict[str, Any], path: Path) -> Path:
    """Write ``config`` as JSON, secrets redacted (the one way trainers should save a resolved recipe)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(redact(config), indent=2, default=str))
    os.replace(tmp, path)
    return path


def keep_until_step(path: Path, step: int) -> None:
    """Drop the records of steps after ``step`` (those since the checkpoint a run resumes from: they are logged
    again) and a torn last line, so a resumed log has every step once."""
    if not path.exists():
        return
    kept = []
    for line in path.read_bytes().splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if line.endswith(b"\n") and isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)


class ConsoleLogger:
    """One line per call: ``step 10 | loss 0.4123 | lr 2e-06``."""

    def __init__(self, **_: Any):
        pass

    def log(self, metrics: dict[str, Any], step: int) -> None:
        parts = [f"step {step}"]
        for key, value in metrics.items():
            value = _scalar(value)
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        print(" | ".join(parts), flush=True)

    def log_config(self, config: dict[str, Any]) -> None:
        pass  # the resolved recipe is long; it is saved (redacted) by the jsonl/wandb loggers instead

    def close(self) -> None:
        pass


class JsonlLogger:
    """``out_dir/metrics.jsonl`` (one JSON object per call) and ``out_dir/config.json`` (redacted)."""

    def __init__(self, *, out_dir: Path, resumed_step: int = 0, **_: Any):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "metrics.jsonl"
        keep_until_step(path, resumed_step)
        self._file = open(path, "a")  # noqa: SIM115 (open for the whole run)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        record = {"step": step, "time": time.time(), **{k: _scalar(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def log_config(self, config: dict[str, Any]) -> None:
        save_config(config, self.out_dir / "config.json")

    def close(self) -> None:
        self._file.close()


def resolve_wandb_mode(configured: str = "offline") -> str:
    """``WANDB_MODE`` if the user set it, else the recipe's ``logging.wandb_mode`` (offline by default). Credentials
    alone never switch a run online: on a machine without network that meant minutes of stalling, then a crash."""
    return os.environ.get("WANDB_MODE") or configured


def wandb_reachable(timeout_s: float = 5.0) -> bool:
    """Can a TCP connection to the W&B server (``WANDB_BASE_URL``, default api.wandb.ai) be opened?"""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout_s):
            return True
    except OSError:
        return False


class WandbLogger:
    """A W&B run under ``out_dir/wandb``; offline files there can be pushed later with ``wandb sync``. An online
    run whose server cannot be reached falls back to offline with one warning."""

    def __init__(self, *, project: str, experiment: str | None, out_dir: Path, mode: str | None = None,
                 entity: str | None = None, capture_console: bool = False, wandb_mode: str = "offline",
                 **_: Any):
        import wandb

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        mode = mode or resolve_wandb_mode(wandb_mode)
        if mode == "online" and not wandb_reachable():
            print(f"wandb: server {os.environ.get('WANDB_BASE_URL', 'https://api.wandb.ai')} unreachable; logging "
                  f"offline to {out_dir / 'wandb'} (push later with `wandb sync`)", file=sys.stderr)
            mode = "offline"

        def init(mode: str):
            return wandb.init(
                project=project, name=experiment, entity=entity, dir=str(out_dir), mode=mode,
                reinit="create_new",  # several loggers (or trainers in one test process) must not share a run
                # Console capture is off by default: whatever a library prints would be uploaded unredacted.
                settings=wandb.Settings(console="auto" if capture_console else "off", quiet=True,
                                        init_timeout=60))

        try:
            self.run = init(mode)
        except Exception as exc:  # an online init that fails (auth, server error) must not end the training run
            if mode != "online":
                raise
            print(f"wandb: online init failed ({scrub_text(str(exc)).splitlines()[0][:200]}); logging offline "
                  f"to {out_dir / 'wandb'}", file=sys.stderr)
            self.run = init("offline")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.run.log({k: _scalar(v) for k, v in metrics.items()}, step=step)

    def log_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(redact(config), allow_val_change=True)

    def close(self) -> None:
        self.run.finish()


LOGGERS: dict[str, type] = {"console": ConsoleLogger, "jsonl": JsonlLogger, "wandb": WandbLogger}


class MultiLogger:
    """Fans every call out to several loggers (what :func:`make_loggers` returns)."""

    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log(metrics, step)

    def log_config(self, config: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_config(config)

    def close(self) -> None:
        errors = []
        for logger in self.loggers:  # close all, even if one fails, so no run is left open
            try:
                logger.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> MultiLogger:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def make_loggers(names: list[str] | str, *, project: str, experiment: str | None, out_dir: Path,
                 config: dict[str, Any] | None = None, is_main: bool = True, **options: Any) -> MultiLogger:
    """Build the loggers named in a recipe's ``[logging] logger`` and record ``config`` (redacted) in each.

    Only the main rank logs (``is_main=False`` gives a logger that does nothing). ``options`` are passed to
    every logger (e.g. ``mode="online"`` or ``entity=`` for wandb).
    """
    from reasonkit.plugins import unknown_name_message

    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(unknown_name_message("logger", name, sorted(LOGGERS)))
    if not is_main:
        return MultiLogger([])
    loggers = MultiLogger([LOGGERS[name](project=project, experiment=experiment, out_dir=Path(out_dir), **options)
                           for name in dict.fromkeys(names)])
    if config is not None:
        loggers.log_config(config)
    return loggers
