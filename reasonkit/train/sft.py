"""Supervised fine-tuning on DeepSpeed ZeRO. Reads top to bottom: the shared run set-up (train/loop.py) → resume →
per micro-batch: frames decoded ahead, encoded, forward/backward, and every ``train_batch_per_replica / mini_batch``
micro-batches an optimizer step, logs and checkpoints → export and uploads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reasonkit.train.recipe import Recipe


def train_sft(recipe: Recipe) -> Path | None:
    from reasonkit.train.collate import SFTCollator
    from reasonkit.train.data import decode
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
    workers = ThreadPoolExecutor(policy.dataloader_num_workers or 1)
    with run.ctx.progress(run.total_steps, initial=run.step) as advance, workers as pool:
        for order in run.epochs():
            micro = [order[i:i + policy.mini_batch] for i in range(0, len(order), policy.mini_batch)]
            window = {}  # micro index -> future frames, decoded ahead in background threads
            step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()
            for m in range(run.position, len(micro)):
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
                run.step += 1
                run.position = m + 1
                elapsed = time.perf_counter() - step_start
                metrics = {"loss": run.dist.mean(step_loss), "lr": engine.get_lr()[0],
                           "tokens_per_s": step_tokens / elapsed,
                           "epoch": run.epoch + run.position / len(micro),
                           "dropped_overlong": collator.stats.dropped_overlong,
                           "truncated": collator.stats.truncated}
                run.ctx.log(metrics, run.step)
                advance(metrics)
                run.save_if_due()
                step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()
                if run.done:
                    break
    return run.finish(collator.stats)
