"""Keep credentials out of logs, saved configs and experiment trackers.

Two independent nets, because either alone misses cases: a key that *looks* secret (``hf_token``, ``api_key``,
``password``) is masked whatever its value, and a value that *is* a live credential (the current ``HF_TOKEN``,
AWS keys, ``WANDB_API_KEY``) is masked under whatever key, even inside a longer string such as a URL.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"

# Environment variables whose values are credentials.
SECRET_ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "WANDB_API_KEY",
    "OPENAI_API_KEY",
)
# Further variables named at run time (the `openai` backend's model.api_key_env), masked like the ones above.
_EXTRA_SECRET_ENV_VARS: set[str] = set()


def register_secret_env(name: str) -> None:
    """Treat the value of environment variable ``name`` as a credential from now on."""
    _EXTRA_SECRET_ENV_VARS.add(name)

# Whole words of a key name that mark it secret. Matched per word so that `max_tokens` or `tokenizer` stay visible.
_SECRET_WORDS = {"token", "secret", "password", "passwd", "pwd", "apikey", "credential", "credentials",
                 "authorization", "auth"}
# Well-known credential shapes, for secrets that arrive under an innocent key.
_SECRET_VALUE_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face user access token
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
)
_MIN_SECRET_LEN = 4  # shorter env values would mask ordinary words everywhere


def _key_words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)  # camelCase → camel Case
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_key(key: Any) -> bool:
    """True for key names such as ``hf_token``, ``aws_secret_access_key``, ``apiKey``, ``wandb_key``, ``password``."""
    words = _key_words(str(key))
    # "key" only as the last word (api_key, access_key, wandb_key): `key_frames` or `keyword` are not secrets.
    return bool(_SECRET_WORDS.intersection(words)) or (len(words) > 0 and words[-1] == "key")


def secret_values() -> list[str]:
    """The credentials currently set in the environment, longest first (so substrings are masked whole)."""
    values = {os.environ.get(var, "") for var in (*SECRET_ENV_VARS, *sorted(_EXTRA_SECRET_ENV_VARS))}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def scrub_text(text: str) -> str:
    """``text`` with every live credential and every credential-shaped substring replaced by ``***``."""
    return _scrub(text, secret_values())


def redact(config: Any) -> Any:
    """A deep copy of ``config`` (dicts, lists, tuples, scalars) that is safe to log or save.

    Values under secret-looking keys become ``***`` (unset values — ``None``, ``""``, ``False`` — are kept: they
    reveal nothing and show the option was off); strings anywhere have live credentials masked.
    """
    return _redact(config, secret_values())


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern in _SECRET_VALUE_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def _is_unset(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and not value)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if is_secret_key(key) and not _is_unset(item) else _redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, secrets) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact(item, secrets) for item in value)
    if isinstance(value, str):
        return _scrub(value, secrets)
    return value
