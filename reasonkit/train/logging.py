"""Experiment logging for trainers: one small interface, `console`, `jsonl` and `wandb` implementations.

Every config that leaves the process (tracker, saved file) goes through :func:`reasonkit.secrets.redact` here,
so trainers cannot forget it.
"""

from __future__ import annotations

import json
import netrc
import os
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from reasonkit.errors import ConfigError
from reasonkit.secrets import redact


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

    def __init__(self, *, out_dir: Path, **_: Any):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_dir / "metrics.jsonl", "a")  # noqa: SIM115 (open for the whole run)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        record = {"step": step, "time": time.time(), **{k: _scalar(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def log_config(self, config: dict[str, Any]) -> None:
        save_config(config, self.out_dir / "config.json")

    def close(self) -> None:
        self._file.close()


def wandb_mode() -> str:
    """``WANDB_MODE`` if the user set it; else online when W&B credentials exist, offline otherwise — a run
    never fails, or waits on a login prompt, for lack of an account."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if _has_wandb_credentials() else "offline"


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger:
    """A W&B run under ``out_dir/wandb``; offline files there can be pushed later with ``wandb sync``."""

    def __init__(self, *, project: str, experiment: str | None, out_dir: Path, mode: str | None = None,
                 entity: str | None = None, capture_console: bool = False, **_: Any):
        import wandb

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            name=experiment,
            entity=entity,
            dir=str(out_dir),
            mode=mode or wandb_mode(),
            reinit="create_new",  # several loggers (or trainers in one test process) must not share a run
            # Console capture is off by default: whatever a library prints would be uploaded unredacted.
            settings=wandb.Settings(console="auto" if capture_console else "off", quiet=True),
        )

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
