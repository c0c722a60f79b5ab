"""What every trainer's loop shares, in the spirit of torchtitan's train.py: set up the run (data, process group,
seeds, run folder, model, DeepSpeed engine, LR schedule), resume, walk the epochs from the saved position, and
finish (final checkpoint, export, uploads, summary). A trainer supplies its step; see sft.py and grpo/trainer.py.

A trainer's position counts its own units within the epoch (SFT: micro-batches; GRPO: prompts); ``Run`` keeps
``step``, ``epoch`` and ``position`` and saves them with every checkpoint."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reasonkit.errors import ConfigError
from reasonkit.train.recipe import Recipe


class Run:
    """One training run. ``rows_per_step``: rows one optimizer step consumes per process (the epoch order is
    padded to a whole number of them); ``updates_per_step``: optimizer steps per trainer step (GRPO's
    ``mu_iterations``), for the LR schedule; ``ds_config``: ``(recipe, on_gpu=...) -> DeepSpeed config``."""

    def __init__(self, recipe: Recipe, *, command: str, rows_per_step: int, ds_config: Callable[..., dict],
                 updates_per_step: int = 1):
        import deepspeed
        import torch

        from reasonkit.backends.loading import check_model_dir
        from reasonkit.train.data import load_rows
        from reasonkit.train.distributed import init_distributed
        from reasonkit.train.engine import load_policy, lr_lambda, param_groups
        from reasonkit.train.run import RunContext

        self.recipe, t = recipe, recipe.train
        check_model_dir(recipe.policy.model_name_or_path)  # bad input fails before any process group or compute
        self.rows, _ = load_rows(recipe)
        self.dist = init_distributed()
        torch.manual_seed(t.seed)
        random.seed(t.seed)
        self.ctx = RunContext(recipe, self.dist, command=command)
        self.spec = recipe.frame_spec()
        self.rows_per_step = rows_per_step
        self.steps_per_epoch = len(self.epoch_order(0)) // rows_per_step
        self.total_steps = min(t.max_steps or 10**12, t.epoch * self.steps_per_epoch)

        self.ds_config = ds_config(recipe, on_gpu=self.dist.device.startswith("cuda"))
        model, self.processor, self.frozen = load_policy(recipe, self.ds_config)
        self.ctx.processor = self.processor
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ConfigError("policy.freeze_pattern froze every parameter: nothing to train")
        schedule = lr_lambda(t.optm_warmup_steps, self.total_steps * updates_per_step, t.optm_decay_type)
        self.engine, *_ = deepspeed.initialize(
            model=model, model_parameters=param_groups(trainable), config=self.ds_config,
            lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
        self.step = self.epoch = self.position = 0

    def epoch_order(self, epoch: int) -> list[int]:
        from reasonkit.train.data import epoch_order

        t = self.recipe.train
        return epoch_order(len(self.rows), seed=t.seed, epoch=epoch, rank=self.dist.rank, world=self.dist.world,
                           batch=self.rows_per_step)

    def resume(self) -> None:
        """Continue from the newest complete checkpoint (``train.resume``); a fresh run starts at 0."""
        self.step, self.epoch, self.position = self.ctx.resume(self.engine)

    def start_logging(self, **extra: Any) -> None:
        self.ctx.start_logging(extra={"rows": len(self.rows), "frozen_params": self.frozen,
                                      "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                                      "frame_spec": self.spec.to_dict(), **extra})

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def epochs(self) -> Iterator[list[int]]:
        """This rank's row order of each epoch still to run. The trainer walks it from ``position``, advancing
        ``step`` and ``position``, and leaves the epoch early once ``done``; a finished epoch moves to the next
        at position 0."""
        while not self.done and self.epoch < self.recipe.train.epoch:
            yield self.epoch_order(self.epoch)
            if self.done:
                return
            self.epoch, self.position = self.epoch + 1, 0

    def save_if_due(self) -> None:
        if self.ctx.should_save(self.step):
            self.ctx.save(self.engine, self.step, self.epoch, self.position)

    def finish(self, stats=None, *, before_uploads: Callable[[], None] | None = None) -> Path | None:
        """The final checkpoint and export, then ``before_uploads`` (e.g. closing a rollout engine), uploads and
        the closing summary; returns the export folder."""
        self.ctx.save(self.engine, self.step, self.epoch, self.position, final=True)
        exported = self.ctx.export(self.engine, self.ctx.export_dir("final")) \
            if self.recipe.train.ckpt.export_safetensors else None
        if before_uploads is not None:
            before_uploads()
        self.ctx.finish(exported, stats=stats)
        return exported
