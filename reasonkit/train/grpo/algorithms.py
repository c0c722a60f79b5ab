"""GRPO math on plain tensors: group-relative advantages and the clipped policy loss.

Every option that shares a name with TRL's ``GRPOConfig`` (``scale_rewards`` -> ``scale``, ``loss_type``,
``epsilon``/``epsilon_high``, ``beta``, ``importance_sampling_level``) is defined as TRL 1.16 defines it
(``GRPOTrainer._generate_and_score_completions`` for advantages, ``GRPOTrainer._compute_loss`` for the
loss), so a reasonkit run and a TRL run with the same settings report comparable numbers. The defaults are
TRL's too (``scale="group"``, ``loss_type="dapo"``, ``epsilon=0.2``, ``beta=0``, token level). Left out of
TRL's options: the cispo/sapo/luspo/vespo losses, two-sided clipping (``delta``), the KL importance-sampling
correction, vLLM importance-sampling weights, entropy masks and bonuses.

Shapes: B sequences (completions), T completion positions (right-padded), G completions per prompt.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Scale = Literal["group", "batch", "none"]
StdKind = Literal["sample", "population"]
LossType = Literal["dapo", "grpo", "bnpo", "dr_grpo"]
ImportanceSamplingLevel = Literal["token", "sequence"]

_SCALES = ("group", "batch", "none")
_STDS = ("sample", "population")
_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
_LEVELS = ("token", "sequence")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}; expected one of {', '.join(map(repr, choices))}")


def _nanstd(x: Tensor, dim: int, population: bool) -> Tensor:
    """Std along ``dim`` ignoring NaNs, keepdim. Sample std (N-1) of < 2 values is NaN, as in TRL."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    if not population:
        n = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
        var = var * torch.where(n > 1, n / (n - 1), torch.nan)
    return var.sqrt()


def compute_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    scale: Scale = "group",
    std: StdKind = "sample",
    eps: float = 1e-4,
) -> Tensor:
    """Group-relative advantages, one per completion.

    Args:
        rewards: shape ``(B*G,)``; the G completions of one prompt are consecutive (rows ``i*G .. i*G+G-1``).
            A NaN reward marks an unscorable completion.
        group_size: G, completions per prompt.
        scale: what the centred reward is divided by (TRL's ``scale_rewards``). ``"group"``: the std of its
            own group. ``"batch"``: the std of all ``B*G`` rewards (the mean subtracted is still the group's).
            ``"none"``: nothing (Dr. GRPO).
        std: ``"sample"`` divides the variance by N-1 (Bessel; torch's default and TRL's ``nanstd``);
            ``"population"`` by N (a reasonkit extension; TRL has no such option).
        eps: added to the std, not to the variance: ``(r - mean) / (std + eps)``. TRL hard-codes ``1e-4``.

    Returns:
        ``(B*G,)`` float tensor ``A_i = (r_i - mean_group) / (std + eps)`` (not divided for ``"none"``).

    As in TRL 1.16, NaN rewards are left out of the mean and std, and every advantage that comes out NaN is
    set to 0 (``torch.nan_to_num``): an unscorable completion, or one whose sample std is undefined (G=1),
    carries no signal. A group whose rewards are all equal gets advantage 0 under every ``scale``.
    """
    _check_choice("scale", scale, _SCALES)
    _check_choice("std", std, _STDS)
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.float()

    grouped = rewards.view(-1, group_size)
    advantages = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
    population = std == "population"
    if scale == "group":
        advantages = advantages / (_nanstd(grouped, 1, population) + eps)
    elif scale == "batch":
        advantages = advantages / (_nanstd(rewards, 0, population) + eps)
    return torch.nan_to_num(advantages.reshape(-1), nan=0.0)


def policy_loss(
    logps: Tensor,
    old_logps: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    loss_type: LossType = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: Tensor | None = None,
    importance_sampling_level: ImportanceSamplingLevel = "token",
    max_completion_length: int | None = None,
    num_items_in_batch: Tensor | float | None = None,
    return_metrics: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Clipped-surrogate GRPO loss (to minimise) for one micro-batch.

    Args:
        logps: ``(B, T)`` log-probs of the sampled completion tokens under the policy being trained.
        old_logps: ``(B, T)`` the same under the policy that sampled them; ``None`` means on-policy
            (``logps.detach()``, as TRL does when it skips recomputing them). Treated as a constant.
        advantages: ``(B,)`` one advantage per sequence (see :func:`compute_advantages`).
        mask: ``(B, T)`` nonzero/True at completion tokens, zero at padding. ``logps``, ``old_logps`` and
            ``ref_logps`` are never read under zeros, so padding may hold anything, -inf or NaN included.
        loss_type: how the per-token losses ``l_it`` are reduced (TRL 1.16 ``_compute_loss``).
            ``"grpo"``: ``mean_i(sum_t l_it / n_i)``, n_i = completion tokens of sequence i (at least 1);
            a fully masked sequence contributes 0 but still counts in the mean over B.
            ``"bnpo"``: ``sum_it l_it / sum_i n_i`` over this micro-batch.
            ``"dr_grpo"``: ``sum_it l_it / (B * max_completion_length)``.
            ``"dapo"``: ``sum_it l_it / num_items_in_batch`` (below); by default the same as ``"bnpo"``.
        epsilon_low, epsilon_high: clip range ``[1 - epsilon_low, 1 + epsilon_high]`` (TRL's ``epsilon``
            and ``epsilon_high``); ``epsilon_high=None`` means ``epsilon_low``. A larger ``epsilon_high``
            is DAPO's clip-higher.
        beta: KL coefficient. When nonzero, ``beta * k3`` is added to every token's loss before the
            reduction, ``k3 = exp(ref - logp) - (ref - logp) - 1`` (the k3 estimator of KL(policy || ref),
            unclamped).
        ref_logps: ``(B, T)`` reference-model log-probs; required when ``beta != 0``. Treated as a constant.
        importance_sampling_level: ``"token"``: ratio ``exp(logp_t - old_t)`` per token. ``"sequence"``
            (GSPO): one ratio per sequence, ``exp(mean_t(logp_t - old_t))`` over its completion tokens,
            broadcast to every token (the gradient reaches all tokens through the mean). TRL recommends
            ``loss_type="grpo"`` with it: the summing reductions weight each sequence by its length.
        max_completion_length: denominator length for ``"dr_grpo"``; defaults to T. Pass the configured
            generation limit to match TRL, which uses it rather than the padded width.
        num_items_in_batch: the ``"dapo"`` divisor; other loss types reject it. Default: the number of
            completion tokens in ``mask`` (single process, no accumulation). A caller whose gradients are
            summed over ``k`` accumulated micro-batches and averaged over ``W`` data-parallel ranks passes
            ``N * k / (W * S)``: ``N`` is the completion-token count of the whole generation batch summed
            over all ranks, ``S`` the number of micro-batches that batch is split into. That is TRL's
            ``num_items_in_batch / num_processes * gradient_accumulation_steps / steps_per_generation``.
            The loss is then already scaled for accumulation: don't divide it by ``k`` again (the other
            loss types are per-micro-batch means, which the caller divides by ``k``, as TRL does).
        return_metrics: also return a dict of detached 0-dim tensors, means over this micro-batch only.
            ``"clip_ratio/low_mean"``: share with ``ratio < 1 - epsilon_low`` and ``A < 0``.
            ``"clip_ratio/high_mean"``: share with ``ratio > 1 + epsilon_high`` and ``A > 0``.
            ``"clip_ratio/region_mean"``: either (where the clip zeroes the gradient).
            ``"ratio_mean"``: mean importance ratio.
            ``"kl"``: mean k3, present whenever ``ref_logps`` is given.
            Means are over completion tokens, except at sequence level, where the clip and ratio entries
            are means over the B sequences (as TRL logs them).

    Returns:
        The scalar loss, or ``(loss, metrics)`` when ``return_metrics``.
    """
    _check_choice("loss_type", loss_type, _LOSS_TYPES)
    _check_choice("importance_sampling_level", importance_sampling_level, _LEVELS)
    if logps.dim() != 2 or mask.shape != logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and mask {tuple(mask.shape)} must both be (B, T)")
    for name, other in (("old_logps", old_logps), ("ref_logps", ref_logps)):
        if other is not None and other.shape != logps.shape:
            raise ValueError(f"{name} has shape {tuple(other.shape)}, expected {tuple(logps.shape)}")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}, expected ({logps.shape[0]},)")
    if beta != 0.0 and ref_logps is None:
        raise ValueError("beta != 0 needs ref_logps")
    if num_items_in_batch is not None and loss_type != "dapo":
        raise ValueError(f"num_items_in_batch only applies to loss_type='dapo', not {loss_type!r}")
    if epsilon_high is None:
        epsilon_high = epsilon_low

    # Zero padded positions before any arithmetic: `x * mask` alone keeps a NaN (NaN * 0 = NaN) in the forward
    # pass and in the gradient, and padding may legitimately hold -inf log-probs.
    keep = mask.bool()
    zero = logps.new_zeros(())
    logps = torch.where(keep, logps, zero)
    old_logps = logps.detach() if old_logps is None else torch.where(keep, old_logps.detach(), zero)
    weights = keep.to(logps.dtype)

    ratio = importance_ratio(logps, old_logps, weights, level=importance_sampling_level)
    adv = advantages.to(logps.dtype).unsqueeze(-1)
    per_token = clipped_surrogate(ratio, adv, epsilon_low, epsilon_high)
    kl = None
    if ref_logps is not None:
        kl = k3_kl(logps, torch.where(keep, ref_logps.detach(), zero))
        if beta != 0.0:
            per_token = per_token + beta * kl
    loss = aggregate(per_token, weights, loss_type, max_completion_length=max_completion_length,
                     num_items_in_batch=num_items_in_batch)

    if not return_metrics:
        return loss
    with torch.no_grad():

        def token_mean(x: Tensor) -> Tensor:
            return (x * weights).sum() / weights.sum().clamp(min=1.0)

        # At sequence level ratio-derived tensors are (B, 1): one value per sequence, averaged over B.
        ratio_level_mean = (lambda x: x.mean()) if importance_sampling_level == "sequence" else token_mean
        is_low = ((ratio < 1 - epsilon_low) & (adv < 0)).to(logps.dtype)
        is_high = ((ratio > 1 + epsilon_high) & (adv > 0)).to(logps.dtype)
        metrics = {
            "clip_ratio/low_mean": ratio_level_mean(is_low),
            "clip_ratio/high_mean": ratio_level_mean(is_high),
            "clip_ratio/region_mean": ratio_level_mean(torch.maximum(is_low, is_high)),
            "ratio_mean": ratio_level_mean(ratio),
        }
        if kl is not None:
            metrics["kl"] = token_mean(kl)
    return loss, metrics


# ---- the pieces of the loss, each a pure function (verl's layout) -----------------------------------------------
def importance_ratio(logps: Tensor, old_logps: Tensor, weights: Tensor, *,
                     level: ImportanceSamplingLevel = "token") -> Tensor:
    """``exp(logp - old)`` per token ``(B, T)``, or per sequence ``(B, 1)`` as ``exp(mean_t(logp - old))`` over the
    completion tokens (GSPO). Padding must already be zeroed in both log-prob tensors."""
    log_ratio = logps - old_logps
    if level == "sequence":
        log_ratio = (log_ratio.sum(-1) / weights.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return torch.exp(log_ratio)


def clipped_surrogate(ratio: Tensor, advantages: Tensor, epsilon_low: float, epsilon_high: float) -> Tensor:
    """PPO's per-token loss ``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``; ``advantages`` is ``(B, 1)``."""
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    return -torch.min(ratio * advantages, clipped * advantages)


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """The k3 estimator of KL(policy || ref) per token, ``exp(ref - logp) - (ref - logp) - 1``, unclamped."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def aggregate(per_token: Tensor, weights: Tensor, loss_type: LossType, *, max_completion_length: int | None = None,
              num_items_in_batch: Tensor | float | None = None) -> Tensor:
    """Reduce ``(B, T)`` per-token losses to the scalar loss as TRL 1.16's ``loss_type`` does (see
    :func:`policy_loss` for each rule); ``weights`` is 1 at completion tokens, 0 at padding."""
    summed = per_token * weights
    if loss_type == "grpo":
        return (summed.sum(-1) / weights.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return summed.sum() / weights.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return summed.sum() / (per_token.shape[0] * (max_completion_length or per_token.shape[1]))
    n = weights.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch)
    return summed.sum() / n.to(per_token.device, per_token.dtype).clamp(min=1.0)
