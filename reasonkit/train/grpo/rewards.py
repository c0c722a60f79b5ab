"""Rewards for GRPO: the recipe's weighted reward plugins, the over-long penalty, and which groups carry signal.

A reward plugin is ``fn(completion, reference, *, sample, answer_type) -> float | (float, info)``. The recipe names
them as a list (weight 1 each) or a ``{name: weight}`` table; ``scorer:<name>`` derives a reward from a benchmark
scorer, so the training signal and the evaluation metric are the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonkit.types import Sample


@dataclass
class Rewards:
    per_function: dict[str, Any]  # name -> (N,) float tensor, unweighted
    total: Any  # (N,) weighted sum, minus the over-long penalty where a completion hit the length limit


class RewardFunctions:
    def __init__(self, spec: list[str] | dict[str, float], *, answer_type: str, overlong_penalty: float = 0.0):
        from reasonkit.plugins import get_reward

        self.weights = dict.fromkeys(spec, 1.0) if isinstance(spec, list) else {k: float(v) for k, v in spec.items()}
        if not self.weights:
            from reasonkit.errors import ConfigError

            raise ConfigError("train.train_policy.reward_function is empty: name at least one reward")
        self.functions = {name: get_reward(name) for name in self.weights}  # unknown names fail here, early
        self.answer_type = answer_type
        self.overlong_penalty = overlong_penalty

    def __call__(self, texts: list[str], samples: list[Sample], truncated: list[bool]) -> Rewards:
        import torch

        per_function = {}
        for name, fn in self.functions.items():
            values = []
            for text, sample in zip(texts, samples):
                value = fn(text, sample.answer, sample=sample, answer_type=self.answer_type)
                values.append(float(value[0] if isinstance(value, tuple) else value))
            per_function[name] = torch.tensor(values, dtype=torch.float32)
        total = torch.zeros(len(texts), dtype=torch.float32)
        for name, values in per_function.items():
            total += self.weights[name] * values
        total -= self.overlong_penalty * torch.tensor(truncated, dtype=torch.float32)
        return Rewards(per_function, total)


def equal_reward_groups(total, group_size: int):
    """(num_groups,) bool: True where every completion of the prompt got the same reward (so every advantage is
    zero and the group only adds cost — and, under loss types that average over tokens, dilutes the others)."""
    grouped = total.view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values).abs() <= 1e-6


def describe(prefix: str, values) -> dict[str, float]:
    """``prefix_mean`` / ``_std`` (population) / ``_min`` / ``_max`` of a 1-D tensor; {} for an empty one."""
    if values.numel() == 0:
        return {}
    values = values.float()
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_std": float(values.std(unbiased=False)),
            f"{prefix}_min": float(values.min()), f"{prefix}_max": float(values.max())}
