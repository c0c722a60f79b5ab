"""`reasonkit train NAME --config recipe.toml`: run a registered trainer (sft, grpo, ...)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Post-train a model from a TOML recipe (SFT, GRPO).", no_args_is_help=True)
