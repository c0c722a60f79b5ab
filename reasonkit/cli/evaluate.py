"""`reasonkit eval BENCHMARK...`: evaluate a model on benchmarks, crash-safe and resumable."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    benchmarks: list[str] = typer.Argument(None, help="Benchmark names (default: the preset's datasets)."),
    config: str = typer.Option(None, "--config", "-c", help="Preset name (benchmarks/NAME.yaml) or YAML path."),
    model: str = typer.Option(None, "--model", help="Hub id or local model folder (model.model_name)."),
    backend: str = typer.Option(None, "--backend", help="Generation backend plugin (model.backend)."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Folder holding benchmark/<name>/..."),
    results_dir: Path = typer.Option(None, "--results-dir", help="Where result records go."),
    limit: int = typer.Option(None, "--limit", help="Only the first N questions per benchmark."),
    batch_size: int = typer.Option(None, "--batch-size", help="Questions per generate call (evaluation.batch_size)."),
    seed: int = typer.Option(None, "--seed", help="Sampling seed (evaluation.seed); one result file per seed."),
    seeds: str = typer.Option(None, "--seeds", help="Several seeds in one pass, e.g. 0,1,2 or 0-4 (evaluation.seeds; "
                              "replaces --seed): clips decoded and vision computed once for all; one file per seed."),
    answer_type: str = typer.Option(None, "--answer-type", help="reasoning | letter"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip questions already recorded."),
    retry_errors: bool = typer.Option(None, "--retry-errors", help="On resume, ask the error records (missing or "
                                      "broken clips) again; their new records replace them."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a config key: section.key=value."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", min=1, help="Data-parallel: model replicas on this "
                                       "node, each taking a share of the questions (torchrun underneath)."),
    nnodes: int = typer.Option(None, "--nnodes", min=1, help="Data-parallel: number of nodes, via torchrun."),
    node_rank: int = typer.Option(None, "--node-rank", min=0, help="This node's rank (multi-node)."),
    rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="host:port of the rendezvous (multi-node)."),
    rdzv_id: str = typer.Option(None, "--rdzv-id", help="Rendezvous id shared by all nodes."),
    wandb_project: str = typer.Option(None, "--wandb-project", help="Also log the scores to this wandb project "
                                      "(offline unless WANDB_MODE=online; files under the results folder)."),
    lm_eval_tasks: str = typer.Option(None, "--lm-eval-tasks", help="Comma-separated lm-eval tasks to run on the "
                                      "same model (text/image tasks: lm-eval has no video tasks)."),
    lm_eval_include: Path = typer.Option(None, "--lm-eval-path", help="Folder of local lm-eval task YAMLs (lm-eval's "
                                         "--include_path)."),
) -> None:
    """Evaluate a model on one or more benchmarks; results are appended per question and resumable. Exit 3: the
    run finished but some questions are error records (missing or broken clips)."""
    from reasonkit.evaluate.runner import eval_from_cli

    eval_from_cli(
        benchmarks=benchmarks or [], config=config, overrides=overrides or [], model=model, backend=backend,
        data_dir=data_dir, results_dir=results_dir, limit=limit, batch_size=batch_size, seed=seed,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        answer_type=answer_type, resume=resume, retry_errors=retry_errors, nproc_per_node=nproc_per_node,
        nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id, wandb_project=wandb_project,
        lm_eval_tasks=[t.strip() for t in lm_eval_tasks.split(",") if t.strip()] if lm_eval_tasks else None,
        lm_eval_include=str(lm_eval_include) if lm_eval_include else None,
    )


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (both ends included), or a mix: ``0-2,7``."""
    from reasonkit.errors import ConfigError

    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-") if not part.startswith("-") else (part, "", "")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: expected seeds like 0,1,2 or 0-4") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected one or more distinct seeds like 0,1,2 or 0-4")
    return seeds
