"""`reasonkit infer`: one answer for one video and prompt, streamed to the terminal."""

from __future__ import annotations

from pathlib import Path

import typer


def infer_command(
    model: str = typer.Option(..., "--model", help="Hub id or local model folder."),
    video: Path = typer.Option(None, "--video", help="Video file (omit for a text-only prompt)."),
    prompt: str = typer.Option(..., "--prompt", help="The question."),
    max_tokens: int = typer.Option(512, "--max-tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    fps: float = typer.Option(4.0, "--fps", help="Frames per second sampled from the video."),
    engine: str = typer.Option("reasonkit", "--engine",
                               help="reasonkit (reasonkit.generation) or generate (transformers)."),
) -> None:
    """Answer one prompt about one video, streaming the reasoning and answer as they are generated."""
    from reasonkit.evaluate.infer import run_infer

    run_infer(model=model, video=video, prompt=prompt, max_tokens=max_tokens, temperature=temperature, fps=fps,
              engine=engine)
