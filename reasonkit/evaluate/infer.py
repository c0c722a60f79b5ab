"""`reasonkit infer`: one prompt on one video with the `hf` backend, tokens streamed as they are generated."""

from __future__ import annotations

import sys
from pathlib import Path

from reasonkit.errors import ReasonkitError
from reasonkit.prompts import free_form_messages
from reasonkit.scoring.extract import answer_span, reasoning_text
from reasonkit.types import FrameSpec, GenRequest


def run_infer(*, model: str, video: Path | None, prompt: str, max_tokens: int, temperature: float,
              fps: float, engine: str = "reasonkit", out=sys.stdout) -> str:
    from transformers import TextStreamer

    from reasonkit.backends.hf import HFBackend
    from reasonkit.media import load_frames

    class ToOut(TextStreamer):
        """transformers' incremental detokenisation (whole words, no split multi-byte characters), written to
        ``out`` and kept."""

        text = ""

        def on_finalized_text(self, piece: str, stream_end: bool = False) -> None:
            self.text += piece
            out.write(piece)
            out.flush()

    if video is not None and not Path(video).is_file():
        raise ReasonkitError(f"{video}: video file not found")
    from reasonkit.families import detect_family, frame_spec_for
    from reasonkit.generation.backend import ENGINES

    if engine not in ENGINES:
        raise ReasonkitError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    backend = HFBackend(model, engine=engine)
    spec = frame_spec_for(FrameSpec(fps=fps), detect_family(model))
    frames = load_frames(video, spec) if video is not None else None
    request = GenRequest(messages=free_form_messages(prompt, with_video=frames is not None), frames=frames,
                         max_tokens=max_tokens, temperature=temperature, seed=0)
    streamer = ToOut(backend.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    backend.generate([request], streamer=streamer)
    text = streamer.text
    out.write("\n")
    answer = answer_span(text)
    if answer is not None or reasoning_text(text) is not None:
        out.write(f"\nreasoning: {reasoning_text(text) or '-'}\nanswer: {(answer or '-').strip()}\n")
    return text
