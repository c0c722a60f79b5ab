"""GRPO math pinned to hand-computed numbers (the arithmetic is written out, never taken from the code)."""

from __future__ import annotations

import math

import pytest
import torch

from reasonkit.train.grpo.algorithms import compute_advantages, policy_loss

EPS = 1e-4


def close(actual, expected, tol=1e-9):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.as_tensor(expected, dtype=torch.float64),
        rtol=tol,
        atol=tol,
    )


# --- advantages --------------------------------------------------------------------------------------------
# Two groups of three: [1, 2, 6] (mean 3, deviations -2, -1, 3, squares sum 14) and [4, 4, 4] (all equal).
REWARDS = torch.tensor([1.0, 2.0, 6.0, 4.0, 4.0, 4.0], dtype=torch.float64)
DEV = [-2.0, -1.0, 3.0, 0.0, 0.0, 0.0]
# Whole batch: mean 21/6 = 3.5, deviations -2.5 -1.5 2.5 .5 .5 .5, squares sum 6.25+2.25+6.25+3*.25 = 15.5.


@pytest.mark.parametrize(
    ("scale", "std", "denominators"),
    [
        ("group", "sample", [math.sqrt(14 / 2)] * 3 + [0.0] * 3),
        ("group", "population", [math.sqrt(14 / 3)] * 3 + [0.0] * 3),
        ("batch", "sample", [math.sqrt(15.5 / 5)] * 6),
        ("batch", "population", [math.sqrt(15.5 / 6)] * 6),
    ],
)
def test_advantages_scaled(scale, std, denominators):
    expected = [d / (s + EPS) for d, s in zip(DEV, denominators, strict=True)]
    close(compute_advantages(REWARDS, 3, scale=scale, std=std), expected)


@pytest.mark.parametrize("std", ["sample", "population"])
def test_advantages_unscaled_is_centred_reward(std):
    close(compute_advantages(REWARDS, 3, scale="none", std=std), DEV)


def test_advantages_eps_is_added_to_std():
    close(compute_advantages(REWARDS[:3], 3, eps=0.5), [d / (math.sqrt(7) + 0.5) for d in DEV[:3]])


def test_advantages_nan_reward_is_left_out_and_gets_zero():
    # Scored [1, 3]: mean 2, sample std sqrt(((-1)^2 + 1^2) / 1) = sqrt(2).
    rewards = torch.tensor([1.0, float("nan"), 3.0])
    close(compute_advantages(rewards, 3), [-1 / (math.sqrt(2) + EPS), 0.0, 1 / (math.sqrt(2) + EPS)], 1e-6)


def test_advantages_single_generation_is_zero_not_nan():
    close(compute_advantages(torch.tensor([1.0, 5.0]), 1), [0.0, 0.0])


def test_advantages_reject_ragged_groups_and_unknown_names():
    with pytest.raises(ValueError):
        compute_advantages(torch.ones(5), 2)
    with pytest.raises(ValueError):
        compute_advantages(torch.ones(4), 2, scale="global")
    with pytest.raises(ValueError):
        compute_advantages(torch.ones(4), 2, std="unbiased")


# --- policy loss -------------------------------------------------------------------------------------------
# Two sequences: three completion tokens, then two plus one padded position.
RATIOS = [[1.5, 0.9, 0.5], [0.7, 1.1]]
ADV = [1.0, -2.0]
OLD = [[-1.0, -2.0, -0.5], [-1.5, -0.3]]
REF_MINUS_LOGP = [[0.1, -0.2, 0.0], [0.3, 0.5]]  # d = ref - logp per completion token
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
N_TOKENS = 5


def make_inputs(pad=float("nan")):
    """Tensors whose padded slot holds `pad`: it must never reach the loss or the gradient."""

    def padded(rows):
        return torch.tensor([rows[0], [*rows[1], pad]], dtype=torch.float64)

    old = padded(OLD)
    logps = (old + padded([[math.log(r) for r in row] for row in RATIOS])).requires_grad_()
    ref = logps.detach() + padded(REF_MINUS_LOGP)
    return logps, old, torch.tensor(ADV, dtype=torch.float64), MASK, ref


# Per-token -min(r*A, clip(r, 0.8, 1.2)*A) with epsilon 0.2:
#   seq 0, A=+1: r=1.5 -> clip 1.2 is smaller -> -1.2 (clipped high); r=0.9 -> -0.9;
#                r=0.5 -> r*A=0.5 < 0.8 -> -0.5 (outside the range but unclipped: pessimistic side)
#   seq 1, A=-2: r=0.7 -> min(-1.4, -1.6) = -1.6 -> 1.6 (clipped low); r=1.1 -> 2.2
PG = [[-1.2, -0.9, -0.5], [1.6, 2.2]]


def k3(d):
    return math.exp(d) - d - 1


def reduce(per_token, loss_type, max_len=3):
    """The four reductions, in plain Python over the unpadded per-token values."""
    total = sum(sum(row) for row in per_token)
    if loss_type == "grpo":
        return sum(sum(row) / len(row) for row in per_token) / len(per_token)
    if loss_type == "dr_grpo":
        return total / (len(per_token) * max_len)
    return total / N_TOKENS  # bnpo, and dapo with its default divisor


def test_per_token_values_by_loss_type():
    # total = -2.6 + 3.8 = 1.2
    assert reduce(PG, "grpo") == pytest.approx((-2.6 / 3 + 3.8 / 2) / 2)
    assert reduce(PG, "bnpo") == pytest.approx(1.2 / 5)
    assert reduce(PG, "dr_grpo") == pytest.approx(1.2 / 6)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_loss_types_without_kl(loss_type):
    logps, old, adv, mask, _ = make_inputs()
    close(policy_loss(logps, old, adv, mask, loss_type=loss_type), reduce(PG, loss_type))


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_loss_types_with_kl(loss_type):
    logps, old, adv, mask, ref = make_inputs()
    beta = 0.1
    per_token = [
        [pg + beta * k3(d) for pg, d in zip(pgs, ds, strict=True)]
        for pgs, ds in zip(PG, REF_MINUS_LOGP, strict=True)
    ]
    got = policy_loss(logps, old, adv, mask, loss_type=loss_type, beta=beta, ref_logps=ref)
    close(got, reduce(per_token, loss_type))


def test_ref_without_beta_adds_nothing():
    logps, old, adv, mask, ref = make_inputs()
    close(policy_loss(logps, old, adv, mask, ref_logps=ref), 1.2 / 5)


def test_dr_grpo_uses_max_completion_length():
    logps, old, adv, mask, _ = make_inputs()
    got = policy_loss(logps, old, adv, mask, loss_type="dr_grpo", max_completion_length=8)
    close(got, 1.2 / (2 * 8))


def test_dapo_divides_by_num_items_in_batch():
    logps, old, adv, mask, _ = make_inputs()
    close(policy_loss(logps, old, adv, mask, loss_type="dapo", num_items_in_batch=12), 1.2 / 12)
    close(policy_loss(logps, old, adv, mask, num_items_in_batch=torch.tensor(12)), 1.2 / 12)
    with pytest.raises(ValueError):
        policy_loss(logps, old, adv, mask, loss_type="bnpo", num_items_in_batch=12)


def test_clip_higher():
    logps, old, adv, mask, _ = make_inputs()
    # epsilon_high 0.6: r=1.5 < 1.6 is no longer clipped -> -1.5 instead of -1.2; the low side is unchanged.
    got = policy_loss(logps, old, adv, mask, loss_type="bnpo", epsilon_low=0.2, epsilon_high=0.6)
    close(got, (-1.5 - 0.9 - 0.5 + 1.6 + 2.2) / 5)
    # epsilon_low 0.4 (high still 0.2): r=0.7 > 0.6, A=-2 -> 1.4 instead of 1.6; r=1.5 still clipped to 1.2.
    got = policy_loss(logps, old, adv, mask, loss_type="bnpo", epsilon_low=0.4, epsilon_high=0.2)
    close(got, (-1.2 - 0.9 - 0.5 + 1.4 + 2.2) / 5)


def test_on_policy_when_old_logps_is_none():
    logps, _, adv, mask, _ = make_inputs()
    # Every ratio is 1: loss = -sum(A per token) / 5 = -(3 * 1 + 2 * -2) / 5.
    close(policy_loss(logps, None, adv, mask, loss_type="bnpo"), 1 / 5)


# Sequence level (GSPO): s_i = exp(mean_t log r_it) = geometric mean of the token ratios.
S0 = (1.5 * 0.9 * 0.5) ** (1 / 3)  # 0.8772, A=+1
S1 = (0.7 * 1.1) ** (1 / 2)  # 0.8775, A=-2


def test_sequence_level_inside_clip_range():
    logps, old, adv, mask, _ = make_inputs()
    got = policy_loss(logps, old, adv, mask, loss_type="grpo", importance_sampling_level="sequence")
    close(got, (-S0 + 2 * S1) / 2)  # both ratios lie in [0.8, 1.2]


def test_sequence_level_clipped():
    logps, old, adv, mask, _ = make_inputs()
    # epsilon 0.05: s0 = 0.8772 < 0.95 with A>0 -> unclipped, -s0 per token;
    # s1 = 0.8775 < 0.95 with A<0 -> min(-2 * 0.8775, -2 * 0.95) = -1.9 -> 1.9 per token (clipped low).
    kwargs = dict(importance_sampling_level="sequence", epsilon_low=0.05, return_metrics=True)
    got, metrics = policy_loss(logps, old, adv, mask, loss_type="grpo", **kwargs)
    close(got, (-S0 + 1.9) / 2)
    got, _ = policy_loss(logps, old, adv, mask, loss_type="bnpo", **kwargs)
    close(got, (3 * -S0 + 2 * 1.9) / 5)  # the sequence's value counts once per token
    # Metrics are per sequence: seq 1 is clipped low, nothing is clipped high.
    close(metrics["clip_ratio/low_mean"], 0.5)
    close(metrics["clip_ratio/high_mean"], 0.0)
    close(metrics["clip_ratio/region_mean"], 0.5)
    close(metrics["ratio_mean"], (S0 + S1) / 2)


def test_metrics_token_level():
    logps, old, adv, mask, ref = make_inputs()
    _, metrics = policy_loss(logps, old, adv, mask, beta=0.1, ref_logps=ref, return_metrics=True)
    close(metrics["clip_ratio/low_mean"], 1 / 5)  # r=0.7 with A<0
    close(metrics["clip_ratio/high_mean"], 1 / 5)  # r=1.5 with A>0 (r=0.5 with A>0 is not clipped)
    close(metrics["clip_ratio/region_mean"], 2 / 5)
    close(metrics["ratio_mean"], (1.5 + 0.9 + 0.5 + 0.7 + 1.1) / 5)
    close(metrics["kl"], sum(k3(d) for row in REF_MINUS_LOGP for d in row) / 5)
    assert not any(v.requires_grad for v in metrics.values())


def test_gradient_inside_and_outside_clip_region():
    logps, old, adv, mask, ref = make_inputs()
    beta = 0.1
    policy_loss(logps, old, adv, mask, loss_type="bnpo", beta=beta, ref_logps=ref).backward()
    # Unclipped token: d(-r*A/5)/d logp = -r*A/5 (dr/dlogp = r). Clipped token: the clipped branch is a
    # constant, so 0. KL: d(beta*k3)/d logp = beta*(1 - exp(d)) / 5 with d = ref - logp.
    expected = [
        [
            (0.0 + beta * (1 - math.exp(0.1))) / 5,  # r=1.5, clipped high
            (-0.9 + beta * (1 - math.exp(-0.2))) / 5,
            (-0.5 + beta * (1 - math.exp(0.0))) / 5,  # r=0.5, outside the range but unclipped
        ],
        [
            (0.0 + beta * (1 - math.exp(0.3))) / 5,  # r=0.7, clipped low
            (2.2 + beta * (1 - math.exp(0.5))) / 5,
            0.0,  # padding
        ],
    ]
    close(logps.grad, expected)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_padding_contributes_nothing(loss_type, level):
    results = []
    for pad in (float("nan"), float("-inf"), 123.0):
        logps, old, adv, mask, ref = make_inputs(pad)
        kwargs = dict(loss_type=loss_type, beta=0.05, ref_logps=ref, importance_sampling_level=level)
        loss, metrics = policy_loss(logps, old, adv, mask, return_metrics=True, **kwargs)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logps.grad).all()
        assert logps.grad[1, 2] == 0
        results.append((loss.detach(), logps.grad, metrics))
    for loss, grad, metrics in results[1:]:
        close(loss, results[0][0])
        close(grad, results[0][1])
        for key, value in metrics.items():
            close(value, results[0][2][key])


def test_fully_masked_sequence_counts_in_grpo_mean():
    logps, old, adv, _, _ = make_inputs()
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    close(policy_loss(logps, old, adv, mask, loss_type="grpo"), (-2.6 / 3 + 0.0) / 2)


def test_bad_arguments():
    logps, old, adv, mask, _ = make_inputs()
    with pytest.raises(ValueError):
        policy_loss(logps, old, adv, mask, beta=0.1)  # no ref_logps
    with pytest.raises(ValueError):
        policy_loss(logps, old, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError):
        policy_loss(logps, old, adv, mask, importance_sampling_level="segment")
    with pytest.raises(ValueError):
        policy_loss(logps, old, adv[:1], mask)


def test_loss_pieces_by_hand():
    from reasonkit.train.grpo.algorithms import aggregate, clipped_surrogate, importance_ratio, k3_kl

    logps = torch.tensor([[0.0, -1.0], [-0.5, 0.0]])
    old = torch.tensor([[0.0, -1.5], [0.0, 0.0]])
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert torch.allclose(importance_ratio(logps, old, weights), torch.exp(torch.tensor([[0.0, 0.5], [-0.5, 0.0]])))
    seq = importance_ratio(logps, old, weights, level="sequence")  # mean over each sequence's completion tokens
    assert torch.allclose(seq, torch.exp(torch.tensor([[0.25], [-0.5]])))
    ratio = torch.tensor([[1.5, 0.5]])
    assert torch.allclose(clipped_surrogate(ratio, torch.tensor([[1.0]]), 0.2, 0.2), torch.tensor([[-1.2, -0.5]]))
    assert torch.allclose(clipped_surrogate(ratio, torch.tensor([[-1.0]]), 0.2, 0.2), torch.tensor([[1.5, 0.8]]))
    assert torch.allclose(k3_kl(torch.tensor([0.0]), torch.tensor([1.0])), torch.tensor([math.e - 2]))
    per_token = torch.tensor([[1.0, 3.0], [2.0, 9.0]])
    assert aggregate(per_token, weights, "grpo") == pytest.approx((4 / 2 + 2 / 1) / 2)
    assert aggregate(per_token, weights, "bnpo") == pytest.approx(6 / 3)
    assert aggregate(per_token, weights, "dr_grpo", max_completion_length=4) == pytest.approx(6 / 8)
    assert aggregate(per_token, weights, "dapo", num_items_in_batch=12) == pytest.approx(6 / 12)
