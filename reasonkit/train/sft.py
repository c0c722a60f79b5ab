"""Supervised fine-tuning on DeepSpeed ZeRO. Reads top to bottom: set up → load data and model → resume → loop
(micro-batches, accumulation, optimizer step, logs, checkpoints) → export → uploads."""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.train.recipe import Recipe
from reasonkit.types import FrameSpec


def load_rows(recipe: Recipe) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training rows and held-out rows (``test_size`` last rows) from the dataset plugin."""
    from reasonkit.plugins import get_dataset

    policy = recipe.train.train_policy
    spec = policy.dataset
    column = policy.conversation_column_name if policy.type == "sft" else policy.prompt_column_name
    rows = list(get_dataset(spec.name)(spec.path, subset=spec.subset, split=spec.split, column=column))
    if spec.limit:
        rows = rows[: spec.limit]
    held_out = rows[len(rows) - spec.test_size:] if spec.test_size else []
    rows = rows[: len(rows) - spec.test_size] if spec.test_size else rows
    if not rows:
        raise ReasonkitError(f"dataset '{spec.name}' ({spec.path}) has no training rows")
    return rows, held_out


def epoch_order(n: int, *, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[int]:
    """This rank's row indices for one epoch: a seeded shuffle, split across ranks, wrapped around so every
    rank runs the same whole number of batches (no row is dropped; a few repeat)."""
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    per_rank = math.ceil(n / world)
    per_rank = math.ceil(per_rank / batch) * batch
    order = (order * math.ceil(per_rank * world / n + 1))[: per_rank * world]
    return order[rank::world]


def decode(row: dict[str, Any], spec: FrameSpec, blank: bool):
    from reasonkit.media import load_frames

    if row.get("video") is None:
        return None
    frames = load_frames(row["video"], spec)
    if blank:  # ablation: same shapes and timing, no visual information
        frames.array = frames.array * 0
    return frames


def train_sft(recipe: Recipe) -> Path | None:
    import torch

    from reasonkit.backends.loading import check_model_dir
    from reasonkit.train.collate import SFTCollator
    from reasonkit.train.distributed import init_distributed
    from reasonkit.train.engine import deepspeed_config, load_policy, lr_lambda, param_groups
    from reasonkit.train.lean import LabelLoss
    from reasonkit.train.run import RunContext

    check_model_dir(recipe.policy.model_name_or_path)  # bad input fails before any process group or compute
    rows, _ = load_rows(recipe)
    dist = init_distributed()
    t = recipe.train
    policy = t.train_policy
    torch.manual_seed(t.seed)
    random.seed(t.seed)
    ctx = RunContext(recipe, dist, command="sft")
    spec = recipe.frame_spec()
    accum = t.train_batch_per_replica // policy.mini_batch
    steps_per_epoch = len(epoch_order(len(rows), seed=t.seed, epoch=0, rank=dist.rank, world=dist.world,
                                      batch=t.train_batch_per_replica)) // t.train_batch_per_replica
    total_steps = min(t.max_steps or 10**12, t.epoch * steps_per_epoch)

    import deepspeed

    ds_config = deepspeed_config(recipe, on_gpu=dist.device.startswith("cuda"))
    model, processor, frozen = load_policy(recipe, ds_config)
    ctx.processor = processor
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ReasonkitError("policy.freeze_pattern froze every parameter: nothing to train")
    optimizer_holder: dict[str, Any] = {}

    def scheduler(optimizer):
        optimizer_holder["opt"] = optimizer
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t.optm_warmup_steps, total_steps,
                                                                      t.optm_decay_type))

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=param_groups(trainable), config=ds_config,
                                           lr_scheduler=scheduler)
    collator = SFTCollator(processor, max_length=recipe.policy.model_max_length, overlong=policy.overlong,
                           system_prompt=policy.system_prompt)
    step, epoch, position = ctx.resume(engine)
    ctx.start_logging(extra={"rows": len(rows), "frozen_params": frozen, "steps_per_epoch": steps_per_epoch,
                             "total_steps": total_steps, "frame_spec": spec.to_dict()})
    engine.train()
    workers = ThreadPoolExecutor(policy.dataloader_num_workers or 1)
    with ctx.progress(total_steps, initial=step) as advance, workers as pool:
        while step < total_steps and epoch < t.epoch:
            order = epoch_order(len(rows), seed=t.seed, epoch=epoch, rank=dist.rank, world=dist.world,
                                batch=t.train_batch_per_replica)
            micro = [order[i:i + policy.mini_batch] for i in range(0, len(order), policy.mini_batch)]
            window = {}  # micro index -> future frames, decoded ahead in background threads
            step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()
            for m in range(position, len(micro)):
                for ahead in range(m, min(m + 1 + 2 * accum, len(micro))):
                    if ahead not in window:
                        window[ahead] = [pool.submit(decode, rows[i], spec, policy.blank_video) for i in micro[ahead]]
                frames = [f.result() for f in window.pop(m)]
                encoded = [e for e in (collator.encode_one(rows[i], fr) for i, fr in zip(micro[m], frames))
                           if e is not None]
                loss_scale = 1.0
                if not encoded:  # every row over-long: a zero-weight step keeps ranks and accumulation in step
                    encoded, loss_scale = [collator.placeholder()], 0.0
                batch = {k: v.to(engine.device) if hasattr(v, "to") else v for k, v in collator.pad(encoded).items()}
                # logits only at label positions, in recomputed chunks (lean.py): never (B, L, vocab) in fp32
                labels = batch.pop("labels")
                loss = engine(**batch, reasonkit_head=LabelLoss(labels)).loss * loss_scale
                engine.backward(loss)
                engine.step()
                step_loss += float(loss.detach()) / accum
                step_tokens += int(batch["attention_mask"].sum())
                if (m + 1) % accum:  # micro-batches are counted from the epoch start, so steps align on resume
                    continue
                step += 1
                position = m + 1
                elapsed = time.perf_counter() - step_start
                metrics = {"loss": mean_over_ranks(step_loss, dist), "lr": engine.get_lr()[0],
                           "tokens_per_s": step_tokens / elapsed,
                           "epoch": epoch + position / len(micro),
                           "dropped_overlong": collator.stats.dropped_overlong,
                           "truncated": collator.stats.truncated}
                ctx.log(metrics, step)
                advance(metrics)
                if ctx.should_save(step):
                    ctx.save(engine, step, epoch, position)
                step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()
                if step >= total_steps:
                    break
            else:
                epoch, position = epoch + 1, 0
    ctx.save(engine, step, epoch, position, final=True)
    exported = ctx.export(engine, ctx.export_dir("final")) if recipe.train.ckpt.export_safetensors else None
    ctx.finish(exported, stats=collator.stats)
    return exported


def mean_over_ranks(value: float, dist) -> float:
    """The step's loss averaged over data-parallel ranks (what the optimizer step actually used)."""
    if dist.world == 1:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t) / dist.world
