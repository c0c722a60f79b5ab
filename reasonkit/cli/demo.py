"""`reasonkit demo`: the offline end-to-end loop on the embedded default — build a small Qwen2.5-VL and the
synthphys benchmark, evaluate, fine-tune with SFT, evaluate again, print before/after."""

from __future__ import annotations

from pathlib import Path

import typer

DEMO_EPOCHS = 2  # 250 steps of 16 rows: ~2 CPU minutes
# Counting is the question type the tiny model learns from pixels within the demo's budget (25% -> 92.5% in 250
# steps); the five-type mix needs the recipe's 1,500 steps (tests/test_learning.py, bench/RESULTS.md).
DEMO_TASKS = "count"


def demo_command(
    out: Path = typer.Option(Path("demo"), "--dir", help="Where the model, data, runs and results go."),
    train: bool = typer.Option(True, "--train/--no-train", help="Also fine-tune and evaluate again."),
    n: int = typer.Option(200, "--n", help="Test questions."),
    train_n: int = typer.Option(2000, "--train-n", help="Training rows."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", help="SFT epochs over the training rows."),
    tasks: str = typer.Option(DEMO_TASKS, "--tasks", help="Comma-separated synthphys question types, or 'all'."),
) -> None:
    """Build a tiny model and the synthphys benchmark, evaluate, fine-tune, evaluate again — offline."""
    from reasonkit.config import EvalConfig, load_config, preset_path, recipe_path
    from reasonkit.evaluate.runner import run_eval
    from reasonkit.scoring.report import print_table, summarize
    from reasonkit.scoring.stats import accuracy_by_task
    from reasonkit.synth.benchmark import CHANCE, build_benchmark, parse_tasks
    from reasonkit.synth.model import build_tiny_model
    from reasonkit.train.recipe import load_recipe

    chosen = parse_tasks(tasks)
    # one data/run folder per task set, so a rerun with other tasks reuses nothing stale
    key = "all" if chosen == parse_tasks("all") else "-".join(chosen)
    model, data, results = out / "model", out / "data" / key, out / "results" / key
    if not (model / "config.json").exists():
        build_tiny_model(model, size="tiny", seed=0)
    if not (data / "benchmark" / "synthphys").exists():
        build_benchmark(data, name="synthphys", n=n, train_n=train_n, seed=0, tasks=chosen)

    def evaluate(model_dir: Path):
        cfg = load_config(EvalConfig, preset_path("synthphys"), [
            f"model.model_name={model_dir}", f"data_dir={data}", f"results_dir={results}"])
        return run_eval(cfg)

    stores = evaluate(model)
    columns = {"before": stores}
    if train:
        from reasonkit.train.sft import train_sft

        run_dir = out / "runs" / f"sft-{key}"
        recipe = load_recipe(recipe_path("synthphys-sft"), [
            f"policy.model_name_or_path={model}", f"train.train_policy.dataset.path={data}",
            f"train.output_dir={run_dir}", f"train.epoch={epochs}", "train.resume=true"])
        final = run_dir / "final"
        if not (final / "config.json").exists():
            train_sft(recipe)
        columns["after SFT"] = evaluate(final)
        stores += columns["after SFT"]
    typer.echo("\nsynthphys accuracy before and after SFT (one row per model):")
    print_table(summarize(stores))
    by_task = {name: accuracy_by_task([r for s in col for r in s.records()]) for name, col in columns.items()}
    typer.echo("\nper question type (chance = a uniform guess):")
    typer.echo(f"{'task':<10} {'chance':>7}" + "".join(f" {name:>10}" for name in by_task))
    records = list(stores[0].records())
    overall_chance = sum(CHANCE[r["meta"]["task"]] for r in records) / max(1, len(records))
    for task in [*chosen, "all"]:
        chance = CHANCE.get(task, overall_chance)
        typer.echo(f"{task:<10} {chance:>7.0%}" + "".join(f" {acc.get(task, float('nan')):>10.0%}"
                                                          for acc in by_task.values()))
