"""GRPO on DeepSpeed ZeRO. Reads top to bottom: set up → per step: prompts → G completions each (hf or vLLM) →
rewards → group advantages → filter → mu_iterations clipped-loss updates on log-probs the trainer recomputes →
weight sync to the rollout engine → logs and checkpoints; then export and uploads, exactly as SFT.

Batch sizes (cosmos-rl names): a step takes ``train_batch_per_replica / n_generation`` prompts per process and
samples ``n_generation`` completions for each; ``mini_batch`` completions go through one forward/backward; every
one of the ``mu_iterations`` passes over the step's completions ends in one optimizer step.

Log-probs: the loss never uses the rollout engine's log-probs. ``old_logps`` are the trainer's own, taken in the
first pass before any update of this batch (the first pass's forward, detached — the same numbers a separate
no-grad pass would give, for free); with ``mu_iterations = 1`` the ratio is therefore exactly 1 (on-policy).
They are ``log_softmax(logits / temperature)`` — the distribution the engines sample from; ``top_p``/``top_k`` < the
full vocabulary truncate sampling but not this score (as in TRL).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonkit.train.recipe import Recipe


@dataclass
class RunStats:  # the closing summary's "data" line (RunContext.finish)
    samples: int = 0  # prompts rolled out
    dropped_overlong: int = 0  # prompts too long for model_max_length - max_response_length
    truncated: int = 0  # completions that hit max_response_length


def train_grpo(recipe: Recipe, *, rollout_backend=None) -> Path | None:
    """Run the recipe. ``rollout_backend``: an already running VLLMBackend to roll out with (tests and benchmarks
    reuse one engine; its weights are replaced by the policy's before the first step)."""
    import torch

    from reasonkit.prefetch import prefetch
    from reasonkit.train.data import decode
    from reasonkit.train.grpo.algorithms import compute_advantages
    from reasonkit.train.grpo.data import make_prompt
    from reasonkit.train.grpo.rewards import RewardFunctions, equal_reward_groups
    from reasonkit.train.grpo.rollout import make_rollout, rollout_engine
    from reasonkit.train.loop import Run

    t, policy, ro = recipe.train, recipe.train.train_policy, recipe.rollout
    rewards_fn = RewardFunctions(policy.reward_function, answer_type=policy.answer_type,
                                 overlong_penalty=policy.overlong_penalty)
    rollout_engine(recipe)  # a wrong rollout.* fails here, before anything loads
    group = ro.n_generation
    prompts_per_step = t.train_batch_per_replica // group
    run = Run(recipe, command="grpo", rows_per_step=prompts_per_step, ds_config=grpo_deepspeed_config,
              updates_per_step=policy.mu_iterations)
    engine, processor, dist, spec, rows = run.engine, run.processor, run.dist, run.spec, run.rows
    reference = load_reference(recipe, run.ds_config, dist) if policy.kl_beta > 0 else None
    run.resume()
    rollout = make_rollout(recipe, engine=engine, processor=processor, dist=dist, out_dir=run.ctx.out,
                           backend=rollout_backend, n_seqs=prompts_per_step * group)
    if run.step > 0 or rollout_backend is not None:
        rollout.sync(engine, processor)  # the engine must sample from the policy's weights, not the folder's
    run.start_logging(prompts_per_step=prompts_per_step, rollout=ro.backend)
    stats = RunStats()
    pad_id = processor.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = processor.tokenizer.eos_token_id
    prompt_limit = recipe.policy.model_max_length - ro.max_response_length
    config = engine.module.config
    placeholders = {getattr(config, name, None) for name in ("image_token_id", "video_token_id")} - {None}
    engine.train()
    with run.ctx.progress(run.total_steps, initial=run.step) as advance:
        for order in run.epochs():
            # this step's clips and the next step's decode in background threads
            decoded = prefetch(lambda i: decode(rows[i], spec), order[run.position:], ahead=2 * prompts_per_step,
                               workers=policy.dataloader_num_workers)
            for start in range(run.position, len(order), prompts_per_step):
                clock = Clock()
                # 1. prompts: the clip decoded once; the same arrays go to the rollout engine and the trainer
                positions = range(start, min(start + prompts_per_step, len(order)))
                prompts = [make_prompt(rows[order[pos]], next(decoded), processor, policy.answer_type)
                           for pos in positions]
                stats.dropped_overlong += sum(p.length > prompt_limit for p in prompts)
                prompts = [p for p in prompts if p.length <= prompt_limit]
                stats.samples += len(prompts)
                clock.lap("prompts")

                # 2. rollout: G completions per prompt
                seed = random.Random(f"{t.seed}/{run.step}/{dist.rank}").randrange(2**31 - 2**20)
                completions = rollout.sample(prompts, seed=seed)
                stats.truncated += sum(c.truncated for c in completions)
                clock.lap("rollout")

                # 3. rewards → group-relative advantages → drop groups whose rewards are all equal (no signal)
                samples = [prompts[c.prompt].sample for c in completions]
                rewards = rewards_fn([c.text for c in completions], samples, [c.truncated for c in completions])
                advantages = compute_advantages(rewards.total, group, scale=policy.advantage_scale,
                                                std=policy.advantage_std)
                equal = equal_reward_groups(rewards.total, group) if completions else torch.zeros(0, dtype=bool)
                keep = (~equal if policy.filter_equal_rewards else torch.ones_like(equal)).repeat_interleave(group)
                # a sampled vision placeholder would be swapped for pixel features in the trainer's forward pass
                # (only untrained models emit them): such completions are scored but not trained on
                keep &= torch.tensor([not placeholders.intersection(c.token_ids) for c in completions], dtype=bool)
                clock.lap("reward")

                # 4. policy update on the kept completions
                items = [(prompts[c.prompt].encoding, c.token_ids) for c, k in zip(completions, keep) if k]
                fallback = (prompts[0].encoding, completions[0].token_ids) if completions else None
                update = policy_update(engine, reference, items, advantages[keep], recipe=recipe, dist=dist,
                                       pad_id=pad_id, fallback=fallback)
                clock.lap("train")

                # 5. weight sync: the next rollout samples from the updated policy
                if update is not None:
                    rollout.sync(engine, processor)
                clock.lap("weight_sync")

                run.step += 1
                run.position = start + prompts_per_step
                metrics = {**rollout_metrics(completions, rewards, advantages[keep], equal, dist),
                           **(update or {"skipped_update": 1}),
                           "lr": engine.get_lr()[0], "epoch": run.epoch + run.position / len(order),
                           **{f"time/{k}": v for k, v in clock.laps.items()}, "time/step": clock.total()}
                run.ctx.log(metrics, run.step)
                advance(metrics)
                run.save_if_due()
                if run.done:
                    break
    return run.finish(stats, before_uploads=rollout.close)


def policy_update(engine, reference, items, advantages, *, recipe: Recipe, dist, pad_id: int,
                  fallback) -> dict[str, float] | None:
    """``mu_iterations`` passes over ``items`` (prompt encoding, completion ids), each pass one optimizer step with
    gradients accumulated over micro-batches of ``mini_batch``. Returns the step's metrics, or None when no rank
    had anything to train on (no optimizer step: Adam would still move the weights on zero gradients).

    Every rank runs the same number of forward/backward passes (ZeRO reduces gradients inside each backward): a
    rank with fewer micro-batches repeats one with weight 0. The ``dapo`` loss is normalised by the completion
    tokens of all ranks, so the gradient DeepSpeed averages over ranks is the global token mean."""
    import torch

    from reasonkit.train.grpo.algorithms import policy_loss
    from reasonkit.train.grpo.sequences import build_batch, completion_logps

    policy = recipe.train.train_policy
    size = policy.mini_batch
    micro = [(items[i:i + size], advantages[i:i + size], 1.0) for i in range(0, len(items), size)]
    tokens = sum(len(ids) for _, ids in items)
    n_micro, total_tokens = dist.all_reduce([len(micro), tokens], op="max")[0], dist.all_reduce([0, tokens])[1]
    if total_tokens == 0:
        return None
    while len(micro) < n_micro:  # weight-0 passes keep the ranks' collectives in step
        micro.append((micro[-1][0], micro[-1][1], 0.0) if micro else ([fallback], torch.zeros(1), 0.0))
    batches = [build_batch(m, pad_id=pad_id) for m, _, _ in micro]
    divisor = {"num_items_in_batch": total_tokens / dist.world} if policy.loss_type == "dapo" else {}
    old, ref = [None] * len(batches), [None] * len(batches)
    sums: dict[str, list[float]] = {}  # name -> [weighted sum, weight]: token means over real micro-batches

    def add(name: str, value, weight: float) -> None:
        entry = sums.setdefault(name, [0.0, 0.0])
        entry[0] += float(value) * weight
        entry[1] += weight

    for iteration in range(policy.mu_iterations):
        first = iteration == 0
        for k, (batch, (_, adv, scale)) in enumerate(zip(batches, micro)):
            out = completion_logps(engine, batch, policy.temperature, with_entropy=first)
            logps, entropy = out if first else (out, None)
            mask = batch["completion_mask"].to(logps.device)
            if first:
                old[k] = logps.detach()  # before any update of this batch: the "old" policy
                if reference is not None:
                    with torch.no_grad():
                        ref[k] = completion_logps(reference, batch, policy.temperature)
            loss, parts = policy_loss(
                logps, old[k], adv.to(logps.device), mask, loss_type=policy.loss_type,
                epsilon_low=policy.epsilon_low, epsilon_high=policy.epsilon_high, beta=policy.kl_beta,
                ref_logps=ref[k], importance_sampling_level=policy.importance_sampling_level,
                max_completion_length=recipe.rollout.max_response_length, return_metrics=True, **divisor)
            if policy.loss_type != "dapo":
                loss = loss / len(batches)  # the other reductions are per-micro-batch means
            engine.backward(loss * scale, scale_wrt_gas=False)
            if scale:
                n = float(mask.sum())
                add("loss", loss.detach() * len(batches), 1.0)  # mean of micro-batch shares = pass objective
                if first:
                    add("entropy", (entropy * mask).sum() / max(1.0, n), n)
                for name, value in parts.items():
                    add(name, value, n)
        engine.step()
    names = ["loss", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
             "ratio_mean", *(["kl"] if reference is not None else [])]  # the same list on every rank
    totals = dist.all_reduce([sums.get(n, [0.0, 0.0])[i] for i in (0, 1) for n in names])
    metrics = {n.replace("_mean", "").replace("clip_ratio/", "clip_ratio_"): total / (weight or 1.0)
               for n, total, weight in zip(names, totals[:len(names)], totals[len(names):])}
    grad_norm = engine.get_global_grad_norm()
    if grad_norm is not None:
        metrics["grad_norm"] = float(grad_norm)
    return metrics


def grpo_deepspeed_config(recipe: Recipe, *, on_gpu: bool) -> dict[str, Any]:
    """SFT's DeepSpeed config, with the accumulation boundary owned by the trainer: the number of micro-batches
    per optimizer step varies with filtering, so ``engine.step()`` (not a micro-step counter) ends each one."""
    from reasonkit.train.engine import deepspeed_config

    config = deepspeed_config(recipe, on_gpu=on_gpu)
    config["managed_gradient_accumulation"] = False
    return config


def load_reference(recipe: Recipe, ds_config: dict[str, Any], dist):
    """The frozen reference policy for the KL term (loaded only when kl_beta > 0), partitioned like the policy
    under ZeRO-3."""
    from reasonkit.backends.loading import load_pretrained
    from reasonkit.train import lean
    from reasonkit.train.engine import weights_dtype

    keep_alive = None
    if ds_config["zero_optimization"]["stage"] == 3:
        from transformers.integrations import HfDeepSpeedConfig

        config = {k: ds_config[k] for k in ("train_micro_batch_size_per_gpu", "bf16", "fp16")}
        config["zero_optimization"] = {"stage": 3}
        keep_alive = HfDeepSpeedConfig(config)  # from_pretrained then builds the model partitioned (zero.Init)
    model, _ = load_pretrained(recipe.policy.model_name_or_path, dtype=weights_dtype(ds_config),
                               revision=recipe.policy.model_revision, with_processor=False)
    model.requires_grad_(False)
    lean.install(model)
    if keep_alive is None:
        return model.to(dist.device).eval()
    import deepspeed

    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine._reasonkit_ds_config = keep_alive
    return engine.eval()


# ------------------------------------------------------------------------------------------------- helpers
def rollout_metrics(completions, rewards, kept_advantages, equal, dist) -> dict[str, float]:
    """Reward stats (total and per function), advantages of the trained completions, group filtering and
    completion lengths, over every rank's completions of the step."""
    import torch

    from reasonkit.train.grpo.rewards import describe

    local = dist.gather({
        "reward": rewards.total, "advantage": kept_advantages, "equal": equal.float(),
        "length": torch.tensor([len(c.token_ids) for c in completions], dtype=torch.float32),
        "truncated": torch.tensor([c.truncated for c in completions], dtype=torch.float32),
        **{f"reward/{name}": values for name, values in rewards.per_function.items()}})
    metrics = {**describe("reward", local["reward"]), **describe("advantage", local["advantage"])}
    for name in rewards.per_function:
        metrics.update(describe(f"reward/{name}", local[f"reward/{name}"]))
    if local["length"].numel():
        metrics.update(groups_equal_reward_frac=float(local["equal"].mean()),
                       completions_trained=int(local["advantage"].numel()),
                       completion_length_mean=float(local["length"].mean()),
                       completion_length_max=float(local["length"].max()),
                       completion_truncated_frac=float(local["truncated"].mean()))
    return metrics


class Clock:
    """Wall time of each phase of a step (``lap(name)`` closes the phase that just ran)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def total(self) -> float:
        return self.last - self.start
