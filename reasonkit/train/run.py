"""What every trainer shares around its loop: output folders, loggers, checkpoints (save, resume, prune),
exports, uploads, the progress bar and the closing summary. A trainer builds one RunContext and calls it."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from reasonkit.train.recipe import Recipe


class RunContext:
    def __init__(self, recipe: Recipe, dist, *, command: str = "sft"):
        from reasonkit.train.checkpoint import CheckpointManager
        from reasonkit.train.logging import save_config

        self.recipe, self.dist, self.command = recipe, dist, command
        self.out = Path(recipe.train.output_dir)
        ck = recipe.train.ckpt
        self.uploads = self._upload_queues() if dist.is_main else []
        if ck.save_mode == "async" and dist.world > 1 and dist.is_main:
            print(f"checkpoints: save_mode 'async' writes from one process only; saving synchronously with "
                  f"{dist.world} processes", file=sys.stderr)
        self.ckpt = CheckpointManager(
            self.out / "checkpoints", save_freq=ck.save_freq, max_keep=ck.max_keep,
            # Several ranks: DeepSpeed's save is a collective, so it runs in the foreground (export and uploads
            # still go to the background). One rank: async copies the state to CPU and writes it in a thread.
            save_mode=ck.save_mode if dist.world == 1 else "sync", is_writer=dist.is_main,
            barrier=dist.barrier if dist.world > 1 else None,
            on_complete=self._on_checkpoint,
            in_use=lambda: [p for _, q in self.uploads for p in q.in_use()],
        )
        self.loggers = None
        self.resumed_step = 0
        self.engine = None  # set by resume(), which every trainer calls before its loop; the periodic eval exports it
        self.evaluator = None
        if recipe.train.eval_freq:
            from reasonkit.train.periodic_eval import PeriodicEval

            self.evaluator = PeriodicEval(recipe, self.out)  # checks [eval] now, before any training compute
        self._claim_output_dir()
        if dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(recipe.model_dump(mode="json"), self.out / "recipe.json")

    def _claim_output_dir(self) -> None:
        from reasonkit.train.run_folder import claim

        aside = claim(self.recipe, is_main=self.dist.is_main, world=self.dist.world)
        self.dist.barrier()
        if aside is not None and self.dist.is_main:
            print(f"train.overwrite: the previous run in {self.out} was moved to {aside}", file=sys.stderr)

    # ---- uploads ------------------------------------------------------------------------------------------
    def _upload_queues(self):
        """One background queue per upload of the recipe (reasonkit.train.uploads), with its target."""
        from reasonkit.storage.background import UploadQueue
        from reasonkit.train.uploads import upload_targets

        return [(target, UploadQueue(target.build(), name=target.name)) for target in upload_targets(self.recipe)]

    def _on_checkpoint(self, path: Path) -> None:
        for target, q in self.uploads:
            if target.when == "all":
                q.submit(path, f"checkpoints/{path.name}")  # under the uploader's own root (s3: s3_prefix)

    # ---- logging ------------------------------------------------------------------------------------------
    def start_logging(self, extra: dict[str, Any]) -> None:
        from reasonkit.train.logging import make_loggers

        lg = self.recipe.logging
        config = {**self.recipe.model_dump(mode="json"), "run": extra, "world_size": self.dist.world}
        self.loggers = make_loggers(lg.logger, project=lg.project_name, experiment=lg.experiment_name,
                                    out_dir=self.out / "logs", config=config, is_main=self.dist.is_main,
                                    resumed_step=self.resumed_step, wandb_mode=lg.wandb_mode)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Log a step's metrics (every ``log_freq`` steps); every ``eval_freq`` steps evaluate first and log the
        eval metrics with them (collective: every rank calls this)."""
        evaluated = {}
        if self.evaluator is not None and self.evaluator.due(step) and self.engine is not None:
            evaluated = self.evaluator.run(self.engine, self.processor, step, self.dist)
        if self.loggers is not None and (step % self.recipe.train.log_freq == 0 or evaluated):
            self.loggers.log({**metrics, **evaluated}, step)

    @contextlib.contextmanager
    def progress(self, total: int, initial: int = 0):
        """A rich progress bar (step, loss, lr, tokens/s, ETA) on the main rank; yields ``advance(metrics)``."""
        from reasonkit.progress import progress_bar

        with progress_bar(enabled=self.dist.is_main and sys.stderr.isatty()) as bar:
            task = bar.task(self.command, total, completed=initial)

            def advance(metrics: dict[str, Any]) -> None:
                task(1, info=" ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in (
                    "loss", "lr", "tokens_per_s", "reward_mean")))

            yield advance

    # ---- checkpoints --------------------------------------------------------------------------------------
    def should_save(self, step: int) -> bool:
        return self.recipe.train.ckpt.enable_checkpoint and self.ckpt.should_save(step)

    def save(self, engine, step: int, epoch: int, position: int, *, final: bool = False,
             extra_state: dict[str, Any] | None = None) -> Path | None:
        """DeepSpeed state (model, optimizer, scheduler) + RNG + loop position; optionally an HF export."""
        from reasonkit.train import ds_checkpoint
        from reasonkit.train.checkpoint import step_dir_name

        ck = self.recipe.train.ckpt
        if not ck.enable_checkpoint:
            return None
        if final:
            self.ckpt.wait()  # an async save of this very step may still be in flight
            if self.ckpt.latest() and self.ckpt.latest().name == step_dir_name(step):
                return self.ckpt.latest()  # just saved at this step
        client = {"step": step, "epoch": epoch, "position": position, "world_size": self.dist.world,
                  "train_batch_per_replica": self.recipe.train.train_batch_per_replica, **(extra_state or {})}
        if self.ckpt.save_mode == "async" and not ds_checkpoint.can_snapshot(engine):
            print("checkpoints: this DeepSpeed checkpoint engine cannot be snapshotted; saving synchronously",
                  file=sys.stderr)
            self.ckpt.save_mode = "sync"
        if self.ckpt.save_mode == "async":
            path = self.ckpt.save(step, snapshot_fn=lambda: ds_checkpoint.snapshot(engine, client, self.dist.rank),
                                  meta=client)
        else:
            path = self.ckpt.save(step, lambda tmp: ds_checkpoint.save_sync(engine, tmp, client, self.dist.rank),
                                  meta=client)
        if ck.export_safetensors == "each":
            self.export(engine, self.export_dir(f"step_{step:06d}"))
        return path

    def resume(self, engine) -> tuple[int, int, int]:
        """(step, epoch, position) to continue from; (0, 0, 0) for a fresh run. A checkpoint saved by another
        number of processes is re-partitioned (see ds_checkpoint), or refused before anything is loaded."""
        from reasonkit.train import ds_checkpoint
        from reasonkit.train.checkpoint import read_marker
        from reasonkit.train.rng import restore_rng_state

        self.engine = engine
        path = self.ckpt.resolve(self.recipe.train.resume)
        if path is None:
            return 0, 0, 0
        meta = read_marker(path)["meta"]
        saved_world = meta.get("world_size", self.dist.world)
        universal = ds_checkpoint.check_reshard(
            engine, saved_world=saved_world, world=self.dist.world, saved_batch=meta.get("train_batch_per_replica"),
            batch=self.recipe.train.train_batch_per_replica, position=meta["position"], checkpoint=path)
        if universal:
            if self.dist.is_main:
                ds_checkpoint.to_universal(path)
            self.dist.barrier()
        client = ds_checkpoint.load(engine, path, universal=universal)
        self.resumed_step = client["step"]
        restore_rng_state(path, rank=self.dist.rank)
        # The position counts this rank's share of the epoch: keep the number of rows consumed over all ranks.
        position = client["position"] * saved_world // self.dist.world
        if self.dist.is_main:
            print(f"resumed from {path} (step {client['step']}"
                  f"{f', saved by {saved_world} processes' if saved_world != self.dist.world else ''})",
                  file=sys.stderr)
        return client["step"], client["epoch"], position

    # ---- exports and the end of the run -------------------------------------------------------------------
    def export_dir(self, name: str) -> Path:
        return self.out / ("final" if name == "final" else f"exports/{name}")

    def export(self, engine, dest: Path) -> Path | None:
        from reasonkit.train.engine import export_hf

        return export_hf(engine, self.processor, dest, is_main=self.dist.is_main)

    def finish(self, exported: Path | None, stats=None) -> None:
        from reasonkit.secrets import scrub_text

        self.ckpt.close()
        if exported is not None:
            for target, q in self.uploads:  # every upload takes the final export, "final" and "all" alike
                q.submit(exported, target.final_dest)
        failures = [f for _, q in self.uploads for f in q.close()]
        results = [r for _, q in self.uploads for r in q.results]
        if self.loggers is not None:
            self.loggers.close()
        self.dist.barrier()
        if not self.dist.is_main:
            return
        lines = [f"{self.command} finished {time.strftime('%H:%M:%S')}",
                 f"  export:       {exported}" if exported else "  export:       (none)",
                 f"  checkpoints:  {self.ckpt.root} (latest: {self.ckpt.latest()})",
                 f"  logs:         {self.out / 'logs'}"]
        if stats is not None:
            lines.append(f"  data:         {stats.samples} samples encoded, {stats.dropped_overlong} dropped as "
                         f"over-long, {stats.truncated} truncated")
        lines += [f"  uploaded:     {r}" for r in results]
        lines += [f"  UPLOAD FAILED: {f.folder} -> {f.uploader} {f.dest}: {f.error}" for f in failures]
        lines.append(f"  resume:       {self.resume_command()}")
        if exported:
            lines.append(f"  evaluate:     reasonkit eval <benchmark> --model {exported}")
        print(scrub_text("\n".join(lines)), file=sys.stderr)
        if failures:  # everything is saved locally; the exit code still tells scripts an upload is missing
            from reasonkit.errors import UploadFailed

            raise UploadFailed(f"{len(failures)} upload(s) failed (UPLOAD FAILED above); the run itself is complete "
                               f"and saved in {self.out}")

    def resume_command(self) -> str:
        """The `reasonkit train` command line that continues this run from its newest checkpoint."""
        import shlex

        if self.recipe.source is None:  # built in code, not loaded from a file
            return f"reasonkit train {self.command} --config <recipe> --set train.resume=true"
        path, overrides = self.recipe.source
        cmd = ["reasonkit", "train", self.command, "--config", str(path)]
        for item in overrides:
            if not item.replace(" ", "").startswith("train.resume="):
                cmd += ["--set", item]
        cmd += ["--set", "train.resume=true"]
        if self.dist.world > 1:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world))
            cmd += ["--nproc-per-node", str(local)]
            if self.dist.world > local:  # each node also passes its own --node-rank and the rendezvous options
                cmd += ["--nnodes", str(self.dist.world // local)]
        return shlex.join(cmd)
