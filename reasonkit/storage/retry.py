"""Retry with exponential backoff, shared by the uploaders and the background upload queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from reasonkit.errors import ReasonkitError
from reasonkit.secrets import scrub_text

T = TypeVar("T")
log = logging.getLogger("reasonkit.storage")

MAX_DELAY_S = 120.0


def with_retries(fn: Callable[[], T], *, attempts: int, backoff_s: float, what: str) -> T:
    """Call ``fn`` up to ``attempts`` times, sleeping ``backoff_s * 2**k`` (capped) between tries.

    A :class:`ReasonkitError` (bad destination, missing credentials) is raised at once: retrying cannot fix it.
    The last failure is re-raised.
    """
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return fn()
        except ReasonkitError:
            raise
        except Exception as exc:
            if attempt >= attempts:
                raise
            delay = min(backoff_s * 2 ** (attempt - 1), MAX_DELAY_S)
            log.warning("%s failed (attempt %d/%d): %s; retrying in %.1f s", what, attempt, attempts,
                        scrub_text(str(exc)), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
