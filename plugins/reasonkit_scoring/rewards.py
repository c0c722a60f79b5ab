"""Reward functions: ``fn(completion, reference, **context) -> float``."""

from __future__ import annotations

import re

from reasonkit.scoring.extract import answer_span

# The whole output must be exactly one think block, a blank line, one answer block (upstream's format rule).
FORMAT = re.compile(r"^<think>(?:(?!</?think>).)*</think>\n\n<answer>(?:(?!</?answer>).)*</answer>$", re.DOTALL)


def format_reward(completion: str, reference: str, **context) -> float:
    return 1.0 if FORMAT.match(completion.strip()) else 0.0


def single_choice_reward(completion: str, reference: str, **context) -> float:
    span = answer_span(completion)
    return 1.0 if span is not None and span.strip().lower() == reference.strip().lower() else 0.0
