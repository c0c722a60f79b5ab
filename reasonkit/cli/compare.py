"""`reasonkit compare A B`: paired comparison of models on the questions both recorded."""

from __future__ import annotations

from pathlib import Path

import typer


def compare_command(
    models: list[str] = typer.Argument(..., help="Results folders, training run folders, model folders (exports) "
                                       "or model names recorded in --results-dir; B is compared against A."),
    baseline: str = typer.Option(None, "--baseline", help="Compare every model named against this one."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir",
                                     help="Where model names and model folders are looked up."),
    show_flips: int = typer.Option(0, "--show-flips", min=0, help="List up to N questions gained and N lost."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Compare models question by question: accuracy difference with a paired bootstrap CI clustered by video,
    exact McNemar p, per dataset and macro; seeds averaged; questions only one side recorded are reported."""
    from reasonkit.scoring.compare import run_compare

    run_compare(models, baseline=baseline, results_dir=results_dir, as_json=as_json, show_flips=show_flips)
