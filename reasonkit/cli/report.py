"""`reasonkit report RESULTS_DIR --out report.html`: one self-contained HTML page of the results."""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(
    results_dir: Path = typer.Argument(..., help="Folder written by `reasonkit eval`."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write."),
    baseline: str = typer.Option(None, "--baseline", help="Model the others are compared against (default: the "
                                 "first in the folder)."),
    samples: int = typer.Option(40, "--samples", min=0, help="Questions shown per run in the sample table."),
    media_root: list[Path] = typer.Option(None, "--media-root", help="Folder the recorded clip paths are relative "
                                          "to, when not the current one (repeatable)."),
) -> None:
    """Write one self-contained HTML report (opens offline): accuracy per dataset with CIs, seed spread, coverage
    and error records, paired comparisons, per-type breakdown, and sample questions with their frames."""
    from reasonkit.scoring.html_report import write_report

    roots = [*(media_root or []), results_dir.resolve().parent]
    path = write_report(results_dir, out, baseline=baseline, samples=samples, media_roots=roots)
    typer.echo(f"written: {path} ({path.stat().st_size / 1024:.0f} kB)")
