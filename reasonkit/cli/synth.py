"""`reasonkit synth model|benchmark`: build the small offline world (tiny model, synthetic benchmark)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Build the small offline world: a tiny Qwen2.5-VL or Qwen3-VL and a synthetic benchmark.",
                  no_args_is_help=True)


@app.command("model")
def model_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the model, tokenizer and processor to."),
    size: str = typer.Option("tiny", "--size", help="tiny (fast tests) or small (the SFT learning demo)."),
    family: str = typer.Option("qwen2.5-vl", "--family", help="qwen2.5-vl (Cosmos-Reason1) or qwen3-vl "
                                                              "(Cosmos-Reason2)."),
    shape: str | None = typer.Option(
        None, "--shape", help="A public shape instead of --size: qwen2.5-vl-3b, qwen2.5-vl-7b, qwen3-vl-2b or "
                              "qwen3-vl-8b (random bf16 weights; GPU benches and tests)."),
    layers: int | None = typer.Option(None, "--layers", min=1, help="With --shape: text layers (default: public)."),
    vision_depth: int | None = typer.Option(None, "--vision-depth", min=1,
                                            help="With --shape: vision blocks (default: public)."),
    seed: int = typer.Option(0, "--seed", help="Weight initialisation seed."),
) -> None:
    """Build a random-init Qwen2.5-VL or Qwen3-VL with a locally trained tokenizer (loads like a hub checkpoint)."""
    from reasonkit.errors import ReasonkitError
    from reasonkit.families import family_named
    from reasonkit.synth import model as qwen25
    from reasonkit.synth import qwen3_vl
    from reasonkit.synth.model import SIZES

    builders = {"qwen2.5-vl": qwen25, "qwen3-vl": qwen3_vl}
    if shape is not None:
        shapes = {name: module for module in builders.values() for name in module.SHAPES}
        if shape not in shapes:
            raise ReasonkitError(f"--shape must be one of {', '.join(shapes)}, got {shape!r}")
        path = shapes[shape].build_shape_model(out, shape, layers=layers, vision_depth=vision_depth, seed=seed)
        typer.echo(f"wrote {shape} (random weights) to {path}")
        return
    if layers is not None or vision_depth is not None:
        raise ReasonkitError("--layers and --vision-depth go with --shape")
    if size not in SIZES:
        raise ReasonkitError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    path = builders[family_named(family).name].build_tiny_model(out, size=size, seed=seed)
    typer.echo(f"wrote {size} {family} to {path}")


@app.command("benchmark")
def benchmark_command(
    out: Path = typer.Option(..., "--out", help="Data directory (benchmark/, sft/ and rl/ are written inside)."),
    name: str = typer.Option("synthphys", "--name", help="Dataset name."),
    n: int = typer.Option(200, "--n", min=0, help="Test questions (one clip each)."),
    train_n: int | None = typer.Option(None, "--train-n", min=0, help="Training rows [default: 4 x n]."),
    seed: int = typer.Option(0, "--seed", help="Generation seed."),
    tasks: str | None = typer.Option(None, "--tasks", help="Comma-separated question types, or 'all'."),
    shuffle_options: bool = typer.Option(
        False, "--shuffle-options/--fixed-options",
        help="Deal each answer's letter independently of its value (harder: the model must look letters up)."),
) -> None:
    """Generate the procedural physical-reasoning video benchmark and a disjoint train split."""
    from reasonkit.synth.benchmark import build_benchmark, parse_tasks

    paths = build_benchmark(out, name=name, n=n, seed=seed, train_n=train_n, tasks=parse_tasks(tasks),
                            shuffle_options=shuffle_options)
    for kind, path in paths.items():
        typer.echo(f"{kind:9s} {path}")
