"""Chat messages for evaluation and training alike (upstream Cosmos-Reason1 wording; README "Evaluation semantics")."""

from __future__ import annotations

from typing import Any

from reasonkit.types import Sample

SYSTEM_PROMPT = "Answer the questions."
LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
REASONING_INSTRUCTION = (
    "Please answer the question in the following format: "
    "<think> your reasoning </think> <answer> your single letter answer </answer>."
)
ANSWER_TYPES = ("reasoning", "letter")


def question_text(sample: Sample, answer_type: str) -> str:
    """Question, one ``(A) option`` line per choice, then the answer instructions."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, got {answer_type!r}")
    lines = [sample.question, *(f"({letter}) {text}" for letter, text in sample.choices.items()),
             LETTER_INSTRUCTION]
    if answer_type == "reasoning":
        lines.append(REASONING_INSTRUCTION)
    return "\n".join(lines)


def build_messages(sample: Sample, answer_type: str, *, with_video: bool = True) -> list[dict[str, Any]]:
    """System + user messages; the user content is the video first, then the question text."""
    content: list[dict[str, Any]] = []
    if with_video:
        content.append({"type": "video"})
    content.append({"type": "text", "text": question_text(sample, answer_type)})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]


def free_form_messages(prompt: str, *, with_video: bool, system: str | None = None) -> list[dict[str, Any]]:
    """Messages for ad-hoc prompts (``reasonkit infer``)."""
    content: list[dict[str, Any]] = [{"type": "video"}] if with_video else []
    content.append({"type": "text", "text": prompt})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if system:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return messages
