"""`reasonkit plugins`: what was discovered, from which package."""

from __future__ import annotations

import json

import typer


def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List registered benchmarks, scorers, rewards, backends, ... and the package providing each."""
    from reasonkit.plugins import get_plugins

    plugins = get_plugins()
    rows = [
        {"kind": r.kind[:-1], "name": r.name, "plugin": r.plugin, "distribution": r.distribution,
         "version": r.version, "description": r.meta.get("description", "")}
        for r in plugins.all()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        _report_conflicts(plugins)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("kind", "name", "package", "version", "description")
    for row in rows:
        table.add_row(row["kind"], row["name"], row["distribution"], row["version"], row["description"])
    Console().print(table)
    _report_conflicts(plugins)


def _report_conflicts(plugins) -> None:
    """Names registered twice are listed and the command exits 2: every lookup of such a name fails."""
    for message in plugins.conflicts.values():
        typer.echo(f"error: {message}", err=True)
    if plugins.conflicts:
        raise typer.Exit(2)
