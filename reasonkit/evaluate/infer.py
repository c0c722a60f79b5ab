"""`reasonkit infer`: one prompt on one video with the `hf` backend, tokens streamed as they are generated."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from reasonkit.errors import ReasonkitError
from reasonkit.prompts import free_form_messages
from reasonkit.scoring.extract import answer_span, reasoning_text
from reasonkit.types import FrameSpec, GenRequest


def run_infer(*, model: str, video: Path | None, prompt: str, max_tokens: int, temperature: float,
              fps: float, out=sys.stdout) -> str:
    from transformers import TextIteratorStreamer

    from reasonkit.backends.hf import HFBackend
    from reasonkit.media import load_frames

    if video is not None and not Path(video).is_file():
        raise ReasonkitError(f"{video}: video file not found")
    from reasonkit.families import detect_family, frame_spec_for

    backend = HFBackend(model)
    spec = frame_spec_for(FrameSpec(fps=fps), detect_family(model))
    frames = load_frames(video, spec) if video is not None else None
    request = GenRequest(messages=free_form_messages(prompt, with_video=frames is not None), frames=frames,
                         max_tokens=max_tokens, temperature=temperature, seed=0)
    inputs = backend.prepare([request])
    streamer = TextIteratorStreamer(backend.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(**inputs, max_new_tokens=max_tokens, streamer=streamer, do_sample=temperature > 0,
                  **({"temperature": temperature} if temperature > 0 else {"temperature": None, "top_p": None,
                                                                           "top_k": None}))
    worker = threading.Thread(target=backend.model.generate, kwargs=kwargs, daemon=True)
    worker.start()
    text = ""
    for piece in streamer:
        text += piece
        out.write(piece)
        out.flush()
    worker.join()
    out.write("\n")
    answer = answer_span(text)
    if answer is not None or reasoning_text(text) is not None:
        out.write(f"\nreasoning: {reasoning_text(text) or '-'}\nanswer: {(answer or '-').strip()}\n")
    return text
