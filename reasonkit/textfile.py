"""Read the text files users hand us (recipes, presets, annotations, training rows) with a one-line error.

``Path.read_text()`` decodes with the locale's codec and a bad byte surfaces as a UnicodeDecodeError traceback
that names neither the file nor where in it; every reader of user text goes through :func:`read_text` instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasonkit.errors import DataError, ReasonkitError


def read_text(path: Path | str, error: type[ReasonkitError] = DataError) -> str:
    """The file's text as UTF-8 (a leading BOM is dropped). ``error`` is raised, naming the file and the byte
    offset, when it is not UTF-8: ConfigError for configs, DataError (default) for data."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    return text.removeprefix("\ufeff")  # editors on Windows write one; json.loads and tomllib refuse it


def read_json(path: Path | str, expected: type, what: str, error: type[ReasonkitError] = DataError) -> Any:
    """The file's JSON, which must be an ``expected`` (list, dict); a one-line ``error`` naming the file and the
    line otherwise. ``what`` describes the expected content for that message, e.g. "a JSON list of entries"."""
    try:
        value = json.loads(read_text(path, error))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, expected):
        raise error(f"{path}: expected {what}")
    return value
