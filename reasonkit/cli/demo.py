"""`reasonkit demo`: the offline end-to-end loop on the embedded default — build a small Qwen2.5-VL and the
synthphys benchmark, evaluate, fine-tune with SFT, evaluate again, print before/after."""

from __future__ import annotations

from pathlib import Path

import typer

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "synthphys-sft.toml"


def demo_command(
    out: Path = typer.Option(Path("demo"), "--dir", help="Where the model, data, runs and results go."),
    train: bool = typer.Option(True, "--train/--no-train", help="Also fine-tune and evaluate again."),
    n: int = typer.Option(100, "--n", help="Test questions."),
    train_n: int = typer.Option(400, "--train-n", help="Training rows."),
) -> None:
    """Build a small model and the synthphys benchmark, evaluate, fine-tune, evaluate again — offline."""
    from reasonkit.config import EvalConfig, load_config, preset_path
    from reasonkit.evaluate.runner import run_eval
    from reasonkit.scoring.report import print_table, summarize
    from reasonkit.synth.benchmark import build_benchmark
    from reasonkit.synth.model import build_tiny_model
    from reasonkit.train.recipe import load_recipe

    model, data, results = out / "model", out / "data", out / "results"
    if not (model / "config.json").exists():
        build_tiny_model(model, size="small", seed=0)
    if not (data / "benchmark" / "synthphys").exists():
        build_benchmark(data, name="synthphys", n=n, train_n=train_n, seed=0)

    def evaluate(model_dir: Path):
        cfg = load_config(EvalConfig, preset_path("synthphys"), [
            f"model.model_name={model_dir}", f"data_dir={data}", f"results_dir={results}"])
        return run_eval(cfg)

    stores = evaluate(model)
    if train:
        from reasonkit.train.sft import train_sft

        run_dir = out / "runs" / "sft"
        recipe = load_recipe(RECIPE, [f"policy.model_name_or_path={model}", f"train.train_policy.dataset.path={data}",
                                      f"train.output_dir={run_dir}", "train.resume=true"])
        final = run_dir / "final"
        if not (final / "config.json").exists():
            train_sft(recipe)
        stores += evaluate(final)
    typer.echo("\nsynthphys accuracy before and after SFT (one row per model):")
    print_table(summarize(stores))
