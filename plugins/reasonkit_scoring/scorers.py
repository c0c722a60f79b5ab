"""Scorers: turn a model output into a Judgement against the sample's reference letter."""

from __future__ import annotations

from reasonkit.scoring.extract import extract_strict, extract_upstream
from reasonkit.types import Judgement, Sample


def _judge(extracted: str | None, sample: Sample) -> Judgement:
    correct = extracted is not None and sample.answer is not None and extracted.upper() == sample.answer.upper()
    return Judgement(extracted=extracted, correct=correct)


class UpstreamScorer:
    name = "upstream"

    def score(self, output: str, sample: Sample, answer_type: str) -> Judgement:
        return _judge(extract_upstream(output, answer_type), sample)


class StrictScorer:
    name = "strict"

    def score(self, output: str, sample: Sample, answer_type: str) -> Judgement:
        return _judge(extract_strict(output, answer_type, sample.choices), sample)
