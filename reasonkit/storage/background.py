"""Uploads in a background thread, so training never waits for (or dies of) the network.

A failed upload is retried with backoff, then reported: logged with what to re-run by hand, and kept in
:attr:`UploadQueue.failures` for the trainer's end-of-run summary. It is never raised into the training loop.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reasonkit.secrets import scrub_text
from reasonkit.storage import Uploader
from reasonkit.storage.retry import with_retries

log = logging.getLogger("reasonkit.storage")


@dataclass(frozen=True)
class UploadFailure:
    folder: Path
    dest: str
    uploader: str
    error: str  # scrubbed of credentials


class UploadQueue:
    """Runs ``uploader.upload(folder, dest)`` for each :meth:`submit`, one at a time, in submission order."""

    def __init__(self, uploader: Uploader, *, name: str | None = None, attempts: int = 3, backoff_s: float = 10.0):
        self.uploader = uploader
        self.name = name or type(uploader).__name__
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.results: list[str] = []
        self.failures: list[UploadFailure] = []
        self._in_flight: list[Path] = []  # queued or uploading; a list, since one folder may be queued twice
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reasonkit-upload-{self.name}")

    def submit(self, folder: Path, dest: str) -> Future:
        """Queue an upload; the future resolves to the uploaded URL, or None if it finally failed."""
        folder = Path(folder)
        with self._lock:
            self._in_flight.append(folder)
        return self._executor.submit(self._run, folder, dest)

    def in_use(self) -> list[Path]:
        """Folders queued or being uploaded (pass as ``CheckpointManager(in_use=...)`` so pruning waits)."""
        with self._lock:
            return list(self._in_flight)

    def close(self) -> list[UploadFailure]:
        """Wait for every queued upload; returns the failures."""
        self._executor.shutdown(wait=True)
        if self.failures:
            log.error("%d %s upload(s) failed; see the errors above", len(self.failures), self.name)
        return self.failures

    def __enter__(self) -> UploadQueue:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, folder: Path, dest: str) -> str | None:
        try:
            url = with_retries(lambda: self.uploader.upload(folder, dest), attempts=self.attempts,
                               backoff_s=self.backoff_s, what=f"{self.name} upload of {folder} to {dest}")
        except Exception as exc:  # reported, never raised: losing an upload must not lose the training run
            error = scrub_text(f"{type(exc).__name__}: {exc}")
            log.error("%s upload of %s to %s failed after retries: %s — the files are still on local disk; "
                      "upload them again once the cause is fixed", self.name, folder, dest, error)
            with self._lock:
                self.failures.append(UploadFailure(folder, dest, self.name, error))
            return None
        else:
            with self._lock:
                self.results.append(url)
            log.info("%s upload of %s done: %s", self.name, folder, url)
            return url
        finally:
            with self._lock:
                self._in_flight.remove(folder)
