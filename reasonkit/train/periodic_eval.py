"""Evaluate the policy on a benchmark every ``train.eval_freq`` steps, through `reasonkit eval`'s own code.

The policy is exported (the same HF export a finished run writes) to ``<output_dir>/eval/model_step_N`` and
evaluated from there by :func:`reasonkit.evaluate.runner.run_eval`, so a training-time number is exactly what
``reasonkit eval --model <export>`` would print. Results stay in ``<output_dir>/eval/results`` (one model per
step: ``reasonkit report`` / ``reasonkit compare`` read them); the export is deleted afterwards unless
``[eval] keep_models``. On a GPU the evaluated copy is loaded beside the training state: size ``[eval] limit``
and ``batch_size`` for that."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from reasonkit.train.recipe import Recipe


class PeriodicEval:
    def __init__(self, recipe: Recipe, out_dir: Path):
        self.recipe, self.section = recipe, recipe.eval
        self.freq = recipe.train.eval_freq
        self.root = Path(out_dir) / "eval"
        self.check()

    def _config(self, model: str):
        from reasonkit.evaluate.runner import resolve_config

        s = self.section
        benchmarks = [s.benchmark] if isinstance(s.benchmark, str) else list(s.benchmark)
        return resolve_config(benchmarks, s.config, [], model=model, data_dir=s.data_dir,
                              results_dir=str(self.root / "results"), limit=s.limit, batch_size=s.batch_size,
                              seed=s.seed, answer_type=s.answer_type)

    def check(self) -> None:
        """Fail before training starts on a bad [eval] section (unknown benchmark, preset, missing data)."""
        from reasonkit.errors import DataError
        from reasonkit.plugins import get_benchmark

        cfg = self._config(self.recipe.policy.model_name_or_path)
        for name in cfg.datasets:
            get_benchmark(name)
        if not Path(cfg.data_dir).is_dir():
            raise DataError(f"[eval] data_dir {cfg.data_dir}: data directory not found")

    def due(self, step: int) -> bool:
        return bool(self.freq) and step > 0 and step % self.freq == 0

    def run(self, engine, processor, step: int, dist) -> dict[str, float]:
        """Export, evaluate (main rank), and return the metrics to log: ``eval/<benchmark>/accuracy``, coverage,
        and one ``eval/<benchmark>/<type>`` per question type."""
        from reasonkit.train.engine import export_hf

        model_dir = self.root / f"model_step_{step:06d}"
        export_hf(engine, processor, model_dir, is_main=dist.is_main)  # collective under ZeRO-3
        metrics: dict[str, float] = {}
        if dist.is_main:
            try:
                metrics = self._evaluate(model_dir, step)
            finally:
                if not self.section.keep_models:
                    shutil.rmtree(model_dir, ignore_errors=True)
        dist.barrier()
        return metrics

    def _evaluate(self, model_dir: Path, step: int) -> dict[str, float]:
        from reasonkit.evaluate.runner import run_eval
        from reasonkit.scoring.breakdown import eval_metrics

        stores = run_eval(self._config(str(model_dir)), progress=False)
        metrics = eval_metrics(stores)
        shown = ", ".join(f"{k.split('/')[1]} {v:.1f}%" for k, v in metrics.items() if k.endswith("/accuracy"))
        print(f"eval at step {step}: {shown} (results: {self.root / 'results'})", file=sys.stderr, flush=True)
        return metrics


def log_eval_to_wandb(stores, *, project: str, experiment: str | None, out_dir: Path, config: dict[str, Any],
                      mode: str = "offline") -> None:
    """`reasonkit eval --wandb-project P`: one wandb run with the scores as its summary and a table per
    benchmark; offline unless WANDB_MODE says online (push later with `wandb sync`)."""
    from reasonkit.scoring.breakdown import eval_metrics
    from reasonkit.train.logging import WandbLogger

    logger = WandbLogger(project=project, experiment=experiment, out_dir=out_dir, wandb_mode=mode)
    try:
        logger.log_config(config)
        metrics = eval_metrics(stores)
        logger.log(metrics, step=0)
        for key, value in metrics.items():
            logger.run.summary[key] = value
    finally:
        logger.close()
