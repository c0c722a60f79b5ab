"""The one progress bar (rich, on stderr) that downloads, eval and training show: label, bar, count, a free-form
info field (rate, loss, ...), elapsed time and ETA."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Advance = Callable[..., None]  # advance(n=1, info=None)


class Bar:
    """Adds tasks to one rich ``Progress``; a disabled bar hands out advances that do nothing."""

    def __init__(self, progress=None):
        self._progress = progress

    def task(self, label: str, total: int | None, *, completed: int = 0) -> Advance:
        progress = self._progress
        if progress is None:
            return lambda n=1, info=None: None
        task = progress.add_task(label, total=total, completed=completed, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            progress.update(task, advance=n, **({"info": info} if info is not None else {}))

        return advance


@contextlib.contextmanager
def progress_bar(*, enabled: bool = True) -> Iterator[Bar]:
    if not enabled:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield Bar(progress)
