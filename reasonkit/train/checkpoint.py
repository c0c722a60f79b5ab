"""Checkpoint lifecycle: crash-safe saves, resume from the newest complete checkpoint, `max_keep` pruning, and
optional asynchronous writes. Trainer-agnostic: what goes *into* a checkpoint is the caller's ``write_fn``.

Layout under ``root``::

    step_000010/                 a checkpoint; complete iff it holds complete.json
    step_000010/complete.json    {"step": 10, "time": ..., "meta": {...}}: written last, fsynced
    .tmp-step_000020/            a save in progress, or the leftover of a crash

A save writes into ``.tmp-step_N``, fsyncs every file, renames the folder to ``step_N``, then writes the marker.
A crash at any moment therefore leaves either a complete checkpoint or something resume ignores.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from reasonkit.errors import ConfigError, ReasonkitError
from reasonkit.secrets import redact

MARKER = "complete.json"
TMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"step_(\d+)")

WriteFn = Callable[[Path], None]
"""Writes a checkpoint's files into the folder it is given (the temporary folder)."""
SnapshotFn = Callable[[], WriteFn]
"""Copies training state to CPU memory (synchronously) and returns the WriteFn that writes that copy."""

log = logging.getLogger(__name__)


class CheckpointSaveError(RuntimeError):
    """A checkpoint save failed (raised at the save itself, or at the next save/wait for an async one)."""


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def read_marker(checkpoint: Path) -> dict[str, Any] | None:
    """The completion marker of ``checkpoint`` (step, time, meta), or None if it is not complete."""
    try:
        data = json.loads((Path(checkpoint) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("step"), int) else None


def is_complete(checkpoint: Path) -> bool:
    return read_marker(checkpoint) is not None


class CheckpointManager:
    """Saves ``root/step_N`` checkpoints every ``save_freq`` steps, keeping the newest ``max_keep`` (-1: all).

    ``save_mode="async"`` runs the (slow) disk write in a background thread; at most one save is in flight, and
    a background failure is raised by the next :meth:`save`, :meth:`wait` or :meth:`close`.

    Several ranks writing one checkpoint (DeepSpeed shards): construct the manager on every rank with
    ``is_writer`` true on one of them and a ``barrier`` (e.g. ``torch.distributed.barrier``); every rank calls
    :meth:`save`, each ``write_fn`` writes its own files, and only the writer renames, marks and prunes. This is
    sync mode only: collectives must not run from a background thread.

    ``on_complete(path)`` is called once a checkpoint is complete (in the writer thread for async saves), e.g.
    to queue its upload. ``in_use`` returns folders that must not be pruned yet (e.g.
    :meth:`UploadQueue.in_use` while an upload of that checkpoint is still running); a later save prunes them.
    """

    def __init__(
        self,
        root: Path,
        *,
        save_freq: int,
        max_keep: int = -1,
        save_mode: Literal["sync", "async"] = "sync",
        is_writer: bool = True,
        barrier: Callable[[], None] | None = None,
        on_complete: Callable[[Path], None] | None = None,
        in_use: Callable[[], Iterable[Path]] | None = None,
    ):
        if save_mode not in ("sync", "async"):
            raise ConfigError(f"checkpoint save_mode must be 'sync' or 'async', got {save_mode!r}")
        if max_keep == 0 or max_keep < -1:
            raise ConfigError(f"checkpoint max_keep must be -1 (keep all) or at least 1, got {max_keep}")
        if save_mode == "async" and barrier is not None:
            raise ConfigError("checkpoint save_mode 'async' is single-writer; use 'sync' with several ranks")
        self.root = Path(root)
        self.save_freq = save_freq
        self.max_keep = max_keep
        self.save_mode = save_mode
        self.is_writer = is_writer
        self._barrier = barrier
        self._on_complete = on_complete
        self._in_use = in_use
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future] | None = None
        if save_mode == "async":
            atexit.register(self._report_at_exit)

    # -- saving ---------------------------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        return self.save_freq > 0 and step > 0 and step % self.save_freq == 0

    def save(
        self,
        step: int,
        write_fn: WriteFn | None = None,
        *,
        snapshot_fn: SnapshotFn | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Save checkpoint ``step``; returns its final path (complete once this returns in sync mode).

        Pass ``write_fn`` (writes the files), or ``snapshot_fn`` (copies state to CPU now, returns the write_fn):
        in async mode only the returned write_fn runs in the background, so training may change the live state
        as soon as this returns. ``meta`` goes into the marker, redacted of secrets.
        """
        if (write_fn is None) == (snapshot_fn is None):
            raise TypeError("CheckpointManager.save needs exactly one of write_fn or snapshot_fn")
        self.wait()  # one save in flight at most; surfaces a failure of the previous async save
        if snapshot_fn is not None:
            write_fn = snapshot_fn()
        record = redact(dict(meta or {}))
        if self.save_mode == "sync":
            self._write(step, write_fn, record)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reasonkit-checkpoint")
            self._pending = (step, self._executor.submit(self._write_in_background, step, write_fn, record))
        return self.root / step_dir_name(step)

    def wait(self) -> None:
        """Block until the in-flight async save is done; raise :class:`CheckpointSaveError` if it failed."""
        if self._pending is None:
            return
        (step, future), self._pending = self._pending, None
        try:
            future.result()
        except Exception as exc:
            raise CheckpointSaveError(f"saving checkpoint step {step} in {self.root} failed: {exc}") from exc

    def close(self) -> None:
        """Wait for the in-flight save (raising its failure) and release the background thread."""
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            atexit.unregister(self._report_at_exit)

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _write_in_background(self, step: int, write_fn: WriteFn, meta: dict[str, Any]) -> None:
        try:
            self._write(step, write_fn, meta)
        except Exception as exc:
            # Said now as well, because the next save that raises it may be hours away.
            log.warning("async save of checkpoint step %d failed (%s); it is raised at the next save", step, exc)
            raise

    def _report_at_exit(self) -> None:
        # Python has already joined the worker thread here; a failure nobody collected must still be seen.
        try:
            self.wait()
        except CheckpointSaveError as exc:
            log.error("%s (found at interpreter exit)", exc)

    def _sync_ranks(self) -> None:
        if self._barrier is not None:
            self._barrier()

    def _write(self, step: int, write_fn: WriteFn, meta: dict[str, Any]) -> None:
        name = step_dir_name(step)
        tmp, final = self.root / (TMP_PREFIX + name), self.root / name
        if self.is_writer:
            self.root.mkdir(parents=True, exist_ok=True)
            _remove_tree(tmp)  # leftover of an earlier crashed save of this step
            tmp.mkdir()
        self._sync_ranks()
        write_fn(tmp)
        _fsync_tree(tmp)
        self._sync_ranks()
        if self.is_writer:
            if final.exists():  # a crash leftover, or the same step saved by an earlier run: replaced
                _delete_checkpoint(final)
            os.rename(tmp, final)
            _fsync_dir(self.root)
            marker = {"step": step, "time": time.time(), "meta": meta}
            _write_json_durably(final / MARKER, marker)
            self._prune()
            if self._on_complete is not None:
                try:
                    self._on_complete(final)
                except Exception:  # the checkpoint is complete and safe; a hook failure must not undo that
                    log.exception("on_complete hook failed for checkpoint %s", final)
        self._sync_ranks()

    # -- finding --------------------------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return [path for _, path in self._scan()[0]]

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        complete = self.checkpoints()
        return complete[-1] if complete else None

    def resolve(self, resume: bool | str | Path | None) -> Path | None:
        """What to resume from: ``True``/``"latest"`` → :meth:`latest` (None when there is none yet);
        ``False``/``None`` → None; a path (absolute, relative, or a name under ``root``) → that checkpoint, which
        must be complete."""
        if resume is None or resume is False:
            return None
        if resume is True or (isinstance(resume, str) and resume == "latest" and not Path(resume).exists()):
            return self.latest()
        path = Path(resume).expanduser()
        if not path.exists() and not path.is_absolute() and (self.root / path).exists():
            path = self.root / path
        known = ", ".join(p.name for p in self.checkpoints()) or "(none)"
        if not path.is_dir():
            raise ReasonkitError(f"resume checkpoint {path} does not exist; complete checkpoints in {self.root}: "
                                 f"{known}")
        if not is_complete(path):
            raise ReasonkitError(f"resume checkpoint {path} is incomplete (no {MARKER}: its save was interrupted); "
                                 f"complete checkpoints in {self.root}: {known}")
        return path

    def _scan(self) -> tuple[list[tuple[int, Path]], list[tuple[int, Path]]]:
        """(complete, leftovers): step-sorted checkpoints with a valid marker, and temporary/incomplete folders."""
        complete, leftovers = [], []
        if not self.root.is_dir():
            return complete, leftovers
        for entry in self.root.iterdir():
            name = entry.name.removeprefix(TMP_PREFIX)
            match = _STEP_DIR.fullmatch(name)
            if not match or not entry.is_dir():
                continue
            step = int(match.group(1))
            marker = None if entry.name.startswith(TMP_PREFIX) else read_marker(entry)
            if marker is not None and marker["step"] == step:
                complete.append((step, entry))
            else:
                leftovers.append((step, entry))
        return sorted(complete), sorted(leftovers)

    # -- pruning --------------------------------------------------------------------------------------------

    def _prune(self) -> None:
        complete, leftovers = self._scan()
        if not complete:
            return
        busy = {Path(p).resolve() for p in self._in_use()} if self._in_use else set()
        if self.max_keep > 0:
            # Slicing off the newest max_keep (>= 1) means the newest complete checkpoint is never deleted.
            for _, path in complete[: -self.max_keep]:
                if path.resolve() in busy:
                    log.info("keeping checkpoint %s past max_keep while it is in use (upload)", path)
                    continue
                _delete_checkpoint(path)
        newest_step = complete[-1][0]
        for step, path in leftovers:
            # Only leftovers older than the newest complete checkpoint: a newer one may be a save in progress.
            if step < newest_step:
                _remove_tree(path)


def _delete_checkpoint(path: Path) -> None:
    # Marker first: if we crash halfway through deleting, what remains is an (ignored) incomplete folder.
    (path / MARKER).unlink(missing_ok=True)
    _fsync_dir(path)
    _remove_tree(path)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename/creation inside ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _write_json_durably(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that ``path`` is either absent or whole: temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
