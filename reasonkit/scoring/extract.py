"""Answer extraction. Two rules:

- ``upstream``: exactly Cosmos-Reason1's — for ``reasoning`` the first ``<answer>…</answer>`` (across newlines),
  then the first uppercase letter inside it; for ``letter`` the first uppercase letter anywhere. Known pitfall:
  "The answer is B" inside the tag yields "T".
- ``strict``: option-aware. Accepts "B", "(B)", "B.", "B) cup", "Option B", "The answer is B", or the option
  text itself; refuses anything that names two different options.
"""

from __future__ import annotations

import re
import unicodedata

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THINK_TAG = re.compile(r"<think>(.*?)</think>", re.DOTALL)
UPPERCASE = re.compile(r"[A-Z]")


def answer_span(output: str) -> str | None:
    """Content of the first complete ``<answer>…</answer>``, or None."""
    match = ANSWER_TAG.search(output)
    return match.group(1) if match else None


def reasoning_text(output: str) -> str | None:
    match = THINK_TAG.search(output)
    return match.group(1).strip() if match else None


def extract_upstream(output: str, answer_type: str) -> str | None:
    """Cosmos-Reason1's rule, reproduced bug for bug."""
    text = answer_span(output) if answer_type == "reasoning" else output
    if text is None:
        return None
    match = UPPERCASE.search(text)
    return match.group(0) if match else None


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)  # full-width letters, compatibility forms
    return " ".join(text.strip().split())


_PREFIX = re.compile(r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)\s*(?:is|:)?\s*",
                     re.IGNORECASE)


def extract_strict(output: str, answer_type: str, choices: dict[str, str]) -> str | None:
    """Option-aware extraction; None when no single option is named unambiguously."""
    text = answer_span(output) if answer_type == "reasoning" else output
    if text is None:
        return None
    text = _normalise(text)
    letters = {k.upper(): _normalise(v) for k, v in choices.items()}
    if not text:
        return None
    body = _PREFIX.sub("", text).strip().rstrip(".").strip()
    # 1. a bare or decorated letter: "B", "(B)", "B.", "B)", "[B]", "B: cup", "B) cup"
    m = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\]]?(?:\s*[\.:\)\-]\s*(.*))?", body)
    if m and m.group(1).upper() in letters:
        letter = m.group(1).upper()
        rest = (m.group(2) or "").strip().rstrip(".")
        if not rest or _same_option(rest, letters[letter]):
            return letter
        return None  # "B: <some other option's text>" is ambiguous
    # 2. the option text itself (case-insensitive), possibly prefixed "(B) text"
    exact = [k for k, v in letters.items() if v and body.lower() == v.lower().rstrip(".")]
    if len(exact) == 1:
        return exact[0]
    # 3. letters named as standalone tokens anywhere ("I think B, not ..."): only if exactly one distinct
    tokens = {t.upper() for t in re.findall(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])", body)}
    named = tokens & set(letters)
    if len(named) == 1 and not any(v and v.lower() in body.lower() for k, v in letters.items() if k not in named):
        return named.pop()
    return None


def _same_option(text: str, option: str) -> bool:
    return text.lower().rstrip(".") == option.lower().rstrip(".")
