"""`reasonkit data download|prepare|verify`: get upstream data and rebuild clips from raw datasets."""

from __future__ import annotations

import typer

app = typer.Typer(help="Download upstream datasets, rebuild clips from raw data, verify a data folder.",
                  no_args_is_help=True)
