"""`reasonkit data download|prepare|verify`: get upstream data and rebuild clips from raw datasets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

app = typer.Typer(help="Download upstream datasets, rebuild clips from raw data, verify a data folder.",
                  no_args_is_help=True)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], Callable[[int], None]]]:
    """Yields ``start(total) -> advance(n)`` for the data functions, on the shared progress bar."""
    from reasonkit.progress import progress_bar

    with progress_bar() as bar:
        yield lambda total: bar.task(label, total)


@app.command("download")
def download_command(
    task: str = typer.Option(..., "--task", help="benchmark | sft | rl"),
    target: Path = typer.Option(..., "--target", help="Data folder; files land in TARGET/<task>/."),
    subset: list[str] = typer.Option(None, "--subset", help="Only this subset folder (repeatable), e.g. "
                                     "robovqa; default: the whole repo."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
    mirror: Path = typer.Option(None, "--mirror", help="Copy from a local mirror folder with the hub repo's "
                                "layout (PATH or PATH/<repo id>) instead of the hub."),
) -> None:
    """Download an upstream Cosmos-Reason1 dataset (HF_TOKEN / HF_ENDPOINT from the environment), extract
    its archives safely and write TARGET/<task>/reasonkit_manifest.json. Re-running resumes."""
    from reasonkit.data.download import download

    report = download(task, target, subsets=subset or None, revision=revision, mirror=mirror,
                      say=lambda line: typer.echo(line, err=True))
    typer.echo(f"{report.repo_id}@{report.revision}: {len(report.files)} files in {report.folder}, "
               f"{len(report.extracted)} archives extracted, {len(report.skipped_archives)} already done; "
               f"manifest {report.manifest}")


@app.command("prepare")
def prepare_command(
    dataset: str = typer.Argument(..., help="bridgev2 | agibot | holoassist"),
    raw_dir: Path = typer.Option(..., "--raw-dir", help="Raw dataset folder (RAW or RAW/<dataset>)."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Folder holding benchmark/<dataset>/."),
    annotation: Path = typer.Option(None, "--annotation", help="Annotation JSON naming the clips (default: "
                                    "DATA_DIR/benchmark/<ds>/<ds>_benchmark_qa_pairs.json); clips are "
                                    "written where its 'video' paths point."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild clips that already exist."),
) -> None:
    """Rebuild benchmark clips from a raw dataset, frame-exact. Clips whose raw input is missing are listed
    (and written to missing_clips.txt) and make the exit code 1; the others are still built."""
    from reasonkit.data import IncompleteData
    from reasonkit.data.prepare import prepare

    with _progress(f"prepare {dataset}") as progress:
        report = prepare(dataset, raw_dir, data_dir, annotation=annotation, overwrite=overwrite,
                         progress=progress)
    typer.echo(f"{dataset}: {report.total} clips: {len(report.written)} written, {len(report.present)} "
               f"already present, {len(report.missing)} missing")
    if report.missing:
        for clip_id, why in sorted(report.missing.items())[:50]:
            typer.echo(f"  missing {clip_id}: {why}")
        if len(report.missing) > 50:
            typer.echo(f"  ... and {len(report.missing) - 50} more")
        raise IncompleteData(f"prepare {dataset}: {len(report.missing)} of {report.total} clips could not be "
                             f"built (listed above and in {report.missing_file})")


@app.command("verify")
def verify_command(
    data_dir: Path = typer.Argument(..., help="Folder holding benchmark/<ds>/."),
    dataset: list[str] = typer.Option(None, "--dataset", help="Only this dataset (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Check that every annotated clip exists, decodes and has the length its id implies; prints a coverage
    table per dataset and exits 1 if anything is missing or broken."""
    from rich.console import Console

    from reasonkit.data import IncompleteData
    from reasonkit.data.verify import render, verify

    with _progress("verify") as progress:
        results = verify(data_dir, datasets=dataset or None, progress=progress)
    ok = not any(r.problems for r in results)
    if as_json:
        typer.echo(json.dumps({"data_dir": str(data_dir), "ok": ok,
                               "datasets": [r.to_dict() for r in results]}, indent=2))
    else:
        render(results, Console())
    if not ok:
        counts = {s: sum(r.counts[s] for r in results) for s in ("missing", "broken", "wrong_length")}
        raise IncompleteData("verify: " + ", ".join(f"{n} clips {s.replace('_', ' ')}" for s, n in counts.items()))
