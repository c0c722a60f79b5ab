"""lm-eval integration: a reasonkit model as an lm-eval ``LM``, and `reasonkit eval --lm-eval-tasks`.

lm-eval has no video tasks: its text (and image) tasks run on the same checkpoint, the video benchmarks stay
reasonkit's. ``generate_until`` goes through the reasonkit backend named (hf, vllm, openai), with the request's
context as one user turn under the model's chat template (what the model is trained on); ``loglikelihood`` and
``loglikelihood_rolling`` score raw text with the transformers model (the ``hf`` backend only: the others do not
expose per-token log-probs of a given continuation).

Use it from Python (``lm_eval.simple_evaluate(model=ReasonkitLM(pretrained=...), tasks=[...])``), or from the
command line with lm-eval's own options: ``python -m reasonkit.evaluate.lmeval --model reasonkit --model_args
pretrained=<folder> --tasks ...`` (lm-eval 0.4 discovers no third-party models, so this registers ``reasonkit``
and then runs lm-eval's CLI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError

MODEL_NAME = "reasonkit"


def _lm_base():
    try:
        from lm_eval.api.model import LM
    except ImportError:
        raise ReasonkitError("lm-eval is not installed: pip install 'reasonkit[lmeval]'") from None
    return LM


class ReasonkitLM(_lm_base()):
    """An lm-eval ``LM`` over a reasonkit backend. ``model_args``: pretrained (hub id or folder), backend (hf),
    dtype (auto), device (auto), batch_size (8), max_length (model's)."""

    def __init__(self, pretrained: str | None = None, backend: str = "hf", dtype: str = "auto", device: str = "auto",
                 batch_size: int | str = 8, max_length: int | None = None, backend_obj=None, **_: Any):
        super().__init__()
        from reasonkit.plugins import get_backend_factory

        if backend_obj is None and pretrained is None:
            raise ReasonkitError("the reasonkit lm-eval model needs model_args pretrained=<hub id or folder>")
        self.backend_name = backend
        if backend_obj is None:
            from reasonkit.backends.loading import backend_options
            from reasonkit.config import ModelSection

            factory = get_backend_factory(backend)
            section = ModelSection(model_name=pretrained, backend=backend, dtype=dtype, device=device,
                                   max_length=max_length or 32768)
            backend_obj = factory(pretrained, **backend_options(backend, factory, section, seed=0))
        self.backend = backend_obj
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8
        self._max_length = max_length

    # ------------------------------------------------------------------------------------------ generation
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from reasonkit.types import GenRequest

        out: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start:start + self.batch_size]
            gen = []
            for req in batch:
                context, kwargs = req.args[0], dict(req.args[1] or {})
                temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample", False) else 0.0
                gen.append(GenRequest(messages=[{"role": "user", "content": [{"type": "text", "text": context}]}],
                                      max_tokens=int(kwargs.get("max_gen_toks", 256)), temperature=temperature,
                                      top_p=float(kwargs.get("top_p", 1.0)), seed=0))
            for req, result in zip(batch, self.backend.generate(gen)):
                text = result.texts[0]
                until = req.args[1].get("until") or []
                for stop in [until] if isinstance(until, str) else until:
                    if stop and stop in text:
                        text = text.split(stop)[0]
                out.append(text)
                self.cache_hook.add_partial("generate_until", req.args, text)
        return out

    # ------------------------------------------------------------------------------------------ likelihoods
    def _hf(self):
        model, processor = getattr(self.backend, "model", None), getattr(self.backend, "processor", None)
        if model is None or processor is None or not hasattr(model, "forward"):
            raise ReasonkitError(f"lm-eval loglikelihood tasks need the hf backend (got {self.backend_name!r}); "
                                 f"generate_until tasks run on any backend")
        return model, processor.tokenizer

    def _continuation_logprobs(self, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
        """Sum of log p(continuation token | everything before it), and whether each was the greedy choice."""
        import torch

        model, _ = self._hf()
        ids = (context_ids + continuation_ids)
        limit = self._max_length or getattr(model.config.get_text_config(), "max_position_embeddings", 32768)
        ids = ids[-(limit + 1):]
        inputs = torch.tensor([ids[:-1]], device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=inputs).logits[0].float()
        n = len(continuation_ids)
        logprobs = torch.log_softmax(logits[-n:], dim=-1)
        target = torch.tensor(ids[-n:], device=logits.device)
        picked = logprobs.gather(1, target[:, None])[:, 0]
        return float(picked.sum()), bool((logprobs.argmax(-1) == target).all())

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        _, tokenizer = self._hf()
        out = []
        for req in requests:
            context, continuation = req.args
            # lm-eval's convention: trailing spaces of the context belong to the continuation.
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            context_ids = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
            if not context_ids:  # score every token after the first: there is nothing to condition on
                context_ids = whole[:1]
            result = self._continuation_logprobs(context_ids, whole[len(context_ids):])
            out.append(result)
            self.cache_hook.add_partial("loglikelihood", req.args, result)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        _, tokenizer = self._hf()
        out = []
        for req in requests:
            ids = tokenizer(req.args[0], add_special_tokens=False)["input_ids"]
            out.append(self._continuation_logprobs(ids[:1], ids[1:])[0] if len(ids) > 1 else 0.0)
        return out


def register() -> None:
    """Make ``--model reasonkit`` known to lm-eval's registry (idempotent)."""
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target="reasonkit.evaluate.lmeval:ReasonkitLM")


def run_lm_eval(model: str, tasks: list[str], *, backend: str = "hf", dtype: str = "auto", device: str = "auto",
                include_path: str | None = None, limit: int | None = None, batch_size: int = 8,
                out_dir: Path) -> dict[str, Any]:
    """`reasonkit eval --lm-eval-tasks`: run lm-eval tasks on ``model``; results.json in ``out_dir``; a table."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise ReasonkitError(f"--lm-eval-path {include_path}: folder not found")
    manager = TaskManager(include_path=include_path)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        raise ReasonkitError(f"lm-eval task(s) not found: {', '.join(unknown)} (local YAML tasks: pass "
                             f"--lm-eval-path DIR)")
    lm = ReasonkitLM(pretrained=model, backend=backend, dtype=dtype, device=device, batch_size=batch_size)
    results = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                      log_samples=False, random_seed=0, numpy_random_seed=0, torch_random_seed=0)
    summary = {"model": model, "backend": backend, "tasks": tasks, "limit": limit,
               "results": results["results"], "versions": results.get("versions", {}),
               "n_samples": results.get("n-samples", {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    _print(summary, out_dir / "results.json")
    return summary


def lm_eval_from_config(cfg, tasks: list[str], *, include_path: str | None = None) -> dict[str, Any]:
    """lm-eval on ``cfg``'s model and backend, ``evaluation.limit`` examples per task; results in
    ``<results_dir>/<model slug>/lm-eval/results.json`` (the folder `reasonkit eval` writes the model's results)."""
    from reasonkit.backends.loading import model_fingerprint
    from reasonkit.evaluate.store import model_slug

    model = cfg.model.model_name
    out_dir = Path(cfg.results_dir) / model_slug(model, model_fingerprint(model)) / "lm-eval"
    return run_lm_eval(model, tasks, backend=cfg.model.backend, dtype=cfg.model.dtype, device=cfg.model.device,
                       include_path=include_path, limit=cfg.evaluation.limit,
                       batch_size=cfg.evaluation.batch_size, out_dir=out_dir)


def _print(summary: dict[str, Any], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("task", "metric", "value", "stderr", title=f"lm-eval: {summary['model']}")
    for task, metrics in summary["results"].items():
        for key, value in metrics.items():
            if key in ("alias", "sample_len") or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            name, _, _ = key.partition(",")
            stderr = metrics.get(key.replace(name, f"{name}_stderr", 1))
            table.add_row(task, name, f"{value:.4f}", f"{stderr:.4f}" if isinstance(stderr, float) else "-")
    Console().print(table)
    print(f"written: {path}")


if __name__ == "__main__":  # `python -m reasonkit.evaluate.lmeval <lm_eval options>`: lm-eval's CLI, plus us
    from reasonkit.evaluate.lmeval import register as register_model  # the importable module, not __main__

    register_model()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
