"""`reasonkit synth model|benchmark`: build the small offline world (tiny model, synthetic benchmark)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build the small offline world: a tiny Qwen2.5-VL and a synthetic benchmark.",
                  no_args_is_help=True)
