"""`reasonkit score RESULTS_DIR`: accuracy tables with coverage and confidence intervals."""

from __future__ import annotations

from pathlib import Path

import typer


def score_command(
    results_dir: Path = typer.Argument(..., help="Folder written by `reasonkit eval`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    scorer: str = typer.Option(None, "--scorer", help="Report this scorer's judgements (one of the preset's "
                               "evaluation.scorers, e.g. strict); default: the run's primary scorer."),
) -> None:
    """Score recorded results: per-dataset, macro and micro accuracy, coverage, bootstrap CIs, accuracy per
    question type and the frames sampled per clip."""
    from reasonkit.scoring.report import run_score

    run_score(results_dir, as_json=as_json, scorer=scorer)
