"""`reasonkit train NAME --config recipe.toml`: one sub-command per registered trainer (sft, grpo, plugins')."""

from __future__ import annotations

import os
import sys

import typer

HELP = ("Post-train a model from a TOML recipe (recipes/). Several processes are started by torchrun, never by "
        "hand. A fresh run needs an empty train.output_dir (--set train.overwrite=true moves an old run aside); "
        "--set train.resume=true continues from the newest complete checkpoint.")


def build_train_app(trainers: dict[str, str]) -> typer.Typer:
    """``trainers``: name -> one-line description, as registered. Each becomes ``reasonkit train NAME``."""
    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
    for name, description in trainers.items():
        summary = description.rstrip(".") or f"the '{name}' trainer"
        app.command(name, help=f"{summary[:1].upper()}{summary[1:]}. {HELP}", short_help=summary)(_command(name))
    return app


def _command(name: str):
    def train_command(
        config: str = typer.Option(..., "--config", "-c", help="TOML recipe: a path, or the name of a shipped "
                                                                "recipe (e.g. synthphys-sft)."),
        overrides: list[str] = typer.Option(None, "--set", help="Override a recipe key: section.key=value "
                                                                 "(repeatable)."),
        nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="Processes (GPUs) per node, via torchrun."),
        nnodes: int = typer.Option(1, "--nnodes", help="Number of nodes, via torchrun."),
        node_rank: int = typer.Option(None, "--node-rank", help="This node's rank (multi-node)."),
        rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="host:port of the rendezvous (multi-node)."),
        rdzv_id: str = typer.Option(None, "--rdzv-id", help="Rendezvous id shared by all nodes."),
    ) -> None:
        run_trainer(name, config, overrides or [], nproc_per_node=nproc_per_node, nnodes=nnodes,
                    node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)

    return train_command


def run_trainer(name: str, config: str, overrides: list[str], *, nproc_per_node: int, nnodes: int,
                node_rank: int | None, rdzv_endpoint: str | None, rdzv_id: str | None) -> None:
    from reasonkit.config import recipe_path
    from reasonkit.errors import ConfigError
    from reasonkit.plugins import get_plugins, get_trainer
    from reasonkit.train.recipe import load_recipe
    from reasonkit.train.run_folder import claim

    path = recipe_path(config)
    recipe = load_recipe(path, overrides)  # validate before any process or model starts
    trainer = get_trainer(name)
    expected = get_plugins().registration("trainers", name).meta.get("policy_type")
    if expected is not None and recipe.train.train_policy.type != expected:
        raise ConfigError(f"{path}: train.train_policy.type is '{recipe.train.train_policy.type}' but the "
                          f"trainer '{name}' trains '{expected}' recipes")
    if (nproc_per_node > 1 or nnodes > 1) and not os.environ.get("REASONKIT_LAUNCHED"):
        from reasonkit.train.distributed import relaunch_with_torchrun

        claim(recipe, world=nproc_per_node * nnodes)  # a refused output_dir or resume stops before torchrun starts
        argv = [a for a in sys.argv[1:]]
        raise typer.Exit(relaunch_with_torchrun(argv, nproc_per_node=nproc_per_node, nnodes=nnodes,
                                                node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id))
    trainer(recipe)
