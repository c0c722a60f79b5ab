"""`reasonkit train NAME --config recipe.toml`: run a registered trainer (sft, grpo, ...)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer


def train_command(
    name: str = typer.Argument(..., help="Trainer plugin: sft, grpo, ..."),
    config: Path = typer.Option(..., "--config", "-c", help="TOML recipe (see recipes/)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a recipe key: section.key=value."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="Processes (GPUs) per node, via torchrun."),
    nnodes: int = typer.Option(1, "--nnodes", help="Number of nodes, via torchrun."),
    node_rank: int = typer.Option(None, "--node-rank", help="This node's rank (multi-node)."),
    rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="host:port of the rendezvous (multi-node)."),
    rdzv_id: str = typer.Option(None, "--rdzv-id", help="Rendezvous id shared by all nodes."),
) -> None:
    """Post-train a model from a TOML recipe. Several processes are started by torchrun, never by hand."""
    from reasonkit.plugins import get_trainer
    from reasonkit.train.recipe import load_recipe

    recipe = load_recipe(config, overrides or [])  # validate before any process or model starts
    trainer = get_trainer(name)
    if recipe.train.train_policy.type != name and name in ("sft", "grpo"):
        from reasonkit.errors import ConfigError

        raise ConfigError(f"{config}: train.train_policy.type is '{recipe.train.train_policy.type}' but the "
                          f"trainer is '{name}'")
    if (nproc_per_node > 1 or nnodes > 1) and not os.environ.get("REASONKIT_LAUNCHED"):
        from reasonkit.train.distributed import relaunch_with_torchrun

        argv = [a for a in sys.argv[1:]]
        raise typer.Exit(relaunch_with_torchrun(argv, nproc_per_node=nproc_per_node, nnodes=nnodes,
                                                node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id))
    trainer(recipe)
