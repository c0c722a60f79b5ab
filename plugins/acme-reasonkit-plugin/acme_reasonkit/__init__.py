"""Example third-party plugin: a benchmark read from a folder of JSON lines, a yes/no scorer and a
length-penalty reward. Copy this package to start your own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from reasonkit.hookspecs import hookimpl
from reasonkit.types import FrameSpec, Judgement, Sample


@dataclass
class AcmeBench:
    """Questions in ``<data_dir>/acme.jsonl``: {"id", "video", "question", "choices", "answer"}."""

    name: str = "acme-bench"
    frame_spec: FrameSpec = field(default_factory=lambda: FrameSpec(fps=2.0, max_frames=8))

    def load(self, data_dir: Path) -> list[Sample]:
        samples = []
        for line in (Path(data_dir) / "acme.jsonl").read_text().splitlines():
            row = json.loads(line)
            video = Path(data_dir) / row["video"] if row.get("video") else None
            samples.append(Sample(id=row["id"], dataset=self.name, video=video, question=row["question"],
                                  choices=row["choices"], answer=row["answer"]))
        return samples


class LastLetterScorer:
    """Takes the last option letter that appears in the output."""

    name = "acme-last-letter"

    def score(self, output: str, sample: Sample, answer_type: str) -> Judgement:
        letters = [ch for ch in output if ch in sample.choices]
        extracted = letters[-1] if letters else None
        return Judgement(extracted=extracted, correct=extracted is not None and extracted == sample.answer)


def brevity_reward(completion: str, reference: str, **context) -> float:
    """1.0 for an empty completion, falling linearly to 0.0 at 200 characters."""
    return max(0.0, 1.0 - len(completion) / 200)


@hookimpl
def reasonkit_register_benchmarks(register):
    register("acme-bench", AcmeBench, description="ACME example benchmark (JSON lines)")


@hookimpl
def reasonkit_register_scorers(register):
    register("acme-last-letter", LastLetterScorer, description="last option letter in the output")


@hookimpl
def reasonkit_register_rewards(register):
    register("acme-brevity", brevity_reward, description="shorter is better")
