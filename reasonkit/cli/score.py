"""`reasonkit score RESULTS_DIR`: accuracy tables with coverage and confidence intervals."""

from __future__ import annotations

from pathlib import Path

import typer


def score_command(
    results_dir: Path = typer.Argument(..., help="Folder written by `reasonkit eval`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Score recorded results: per-dataset, macro and micro accuracy, coverage, bootstrap CIs."""
    from reasonkit.scoring.report import run_score

    run_score(results_dir, as_json=as_json)
