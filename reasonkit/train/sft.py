"""Supervised fine-tuning on DeepSpeed ZeRO. Reads top to bottom: the shared run set-up (train/loop.py) → resume →
per optimizer step: the step's ``train_batch_per_replica`` clips (decoded ahead in background threads) encoded,
split into micro-batches of ``mini_batch`` (longest first with ``group_by_length``), forward/backward on each,
the optimizer step, logs and checkpoints → export and uploads."""

from __future__ import annotations

import time
from pathlib import Path

from reasonkit.train.recipe import Recipe


def train_sft(recipe: Recipe) -> Path | None:
    from reasonkit.prefetch import prefetch
    from reasonkit.train.collate import SFTCollator
    from reasonkit.train.data import decode, split_step
    from reasonkit.train.engine import deepspeed_config
    from reasonkit.train.lean import LabelLoss
    from reasonkit.train.loop import Run

    t = recipe.train
    policy = t.train_policy
    run = Run(recipe, command="sft", rows_per_step=t.train_batch_per_replica, ds_config=deepspeed_config)
    engine, spec, rows = run.engine, run.spec, run.rows
    accum = t.train_batch_per_replica // policy.mini_batch
    collator = SFTCollator(run.processor, max_length=recipe.policy.model_max_length, overlong=policy.overlong,
                           system_prompt=policy.system_prompt)
    run.resume()
    run.start_logging()
    engine.train()
    rows_per_step = t.train_batch_per_replica
    with run.ctx.progress(run.total_steps, initial=run.step) as advance:
        for order in run.epochs():
            todo = order[run.position * policy.mini_batch:]  # position counts micro-batches from the epoch start
            decoded = prefetch(lambda i: decode(rows[i], spec, policy.blank_video), todo,
                               ahead=2 * rows_per_step, workers=policy.dataloader_num_workers)
            for first in range(0, len(todo), rows_per_step):
                step_rows = todo[first:first + rows_per_step]
                step_start = time.perf_counter()
                encoded = [collator.encode_one(rows[i], next(decoded)) for i in step_rows]
                step_loss, step_tokens, step_padded = 0.0, 0, 0
                for micro in split_step(encoded, accum, by_length=policy.group_by_length):
                    loss_scale = 1.0
                    if not micro:  # every row over-long: a zero-weight step keeps ranks and accumulation in step
                        micro, loss_scale = [collator.placeholder()], 0.0
                    batch = {k: v.to(engine.device) if hasattr(v, "to") else v
                             for k, v in collator.pad(micro).items()}
                    # logits only at label positions, in recomputed chunks (lean.py): never (B, L, vocab) in fp32
                    labels = batch.pop("labels")
                    loss = engine(**batch, reasonkit_head=LabelLoss(labels)).loss * loss_scale
                    engine.backward(loss)
                    engine.step()
                    step_loss += float(loss.detach()) / accum
                    step_tokens += int(batch["attention_mask"].sum())
                    step_padded += batch["attention_mask"].numel()
                run.step += 1
                run.position += accum
                elapsed = time.perf_counter() - step_start
                metrics = {"loss": run.dist.mean(step_loss), "lr": engine.get_lr()[0],
                           "tokens_per_s": step_tokens / elapsed, "padding": 1 - step_tokens / step_padded,
                           "epoch": run.epoch + run.position * policy.mini_batch / len(order),
                           "dropped_overlong": collator.stats.dropped_overlong,
                           "truncated": collator.stats.truncated}
                run.ctx.log(metrics, run.step)
                advance(metrics)
                run.save_if_due()
                if run.done:
                    break
    return run.finish(collator.stats)
