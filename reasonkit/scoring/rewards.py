"""Rewards derived from scorers, so GRPO optimises exactly what evaluation measures."""

from __future__ import annotations

from reasonkit.types import Sample, Scorer


def reward_from_scorer(scorer: Scorer):
    """``fn(completion, reference, *, sample=None, answer_type="reasoning") -> (1.0|0.0, info)``."""

    def reward(completion: str, reference: str, **context) -> tuple[float, dict]:
        sample: Sample | None = context.get("sample")
        if sample is None:  # no options known: the reference letter is the only valid choice
            sample = Sample(id="", dataset="", video=None, question="", choices={reference: reference},
                            answer=reference)
        judgement = scorer.score(completion, sample, context.get("answer_type", "reasoning"))
        return (1.0 if judgement.correct else 0.0), {"extracted": judgement.extracted}

    reward.__name__ = f"scorer_{scorer.name}_reward"
    return reward
