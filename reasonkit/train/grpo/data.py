"""GRPO prompts: RL rows → the same Sample, chat messages and frames evaluation uses, encoded once per prompt.

A prompt's frames are decoded once and the same arrays go to the rollout engine (hf or vLLM) and to the trainer's
log-prob pass; its processor encoding (token ids with the expanded video placeholders, pixel values, grid sizes)
is made once and shared by its G completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonkit.types import Frames, Sample


@dataclass
class Prompt:
    sample: Sample
    frames: Frames | None
    messages: list[dict[str, Any]]
    encoding: dict[str, Any]  # processor output for the prompt alone, batch dimension 1, on CPU

    @property
    def length(self) -> int:
        return int(self.encoding["input_ids"].shape[1])


def row_to_sample(row: dict[str, Any]) -> Sample:
    """An RL row ``{"id", "video", "qa"}`` (reasonkit_datasets.rows.rl_rows) as a multiple-choice Sample."""
    from reasonkit.upstream_format import parse_question

    qa = row["qa"]
    question, choices, answer = parse_question(qa, f"RL row {row.get('id', '?')}")
    extra = {k: v for k, v in qa.items() if k not in ("question", "index2ans", "answer", "correct_answer")}
    return Sample(id=str(row.get("id", "")), dataset="rl", video=row.get("video"), question=question,
                  choices=choices, answer=answer, metadata=extra)


def encode_prompt(processor, messages: list[dict[str, Any]], frames: Frames | None) -> dict[str, Any]:
    """Exactly what the hf backend feeds ``generate`` for this prompt (chat template, video metadata, no
    re-sampling of frames), so the log-prob pass conditions on the same tokens and pixels as the rollout."""
    from reasonkit.encoding import model_inputs

    return model_inputs(processor, [messages], [frames])


def make_prompt(row: dict[str, Any], frames: Frames | None, processor, answer_type: str) -> Prompt:
    from reasonkit.prompts import build_messages

    sample = row_to_sample(row)
    messages = build_messages(sample, answer_type, with_video=frames is not None)
    return Prompt(sample, frames, messages, encode_prompt(processor, messages, frames))

