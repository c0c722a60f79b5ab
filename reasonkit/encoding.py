"""The one seam from chat messages and decoded frames to model inputs, shared by every backend and trainer.

Evaluation (hf and vllm backends), SFT's collator and GRPO's prompts all render the chat template and hand frames
to the processor here, so a model is trained on exactly the tokens and pixels it is evaluated on.

Frames arrive already sampled and sized by :mod:`reasonkit.media` under the run's frame spec, so the processor
is told not to sample (``do_sample_frames=False``) and not to resize (``do_resize=False``): the recorded frame
shape is what the model sees. The video metadata carries each frame's true timestamp (see
:meth:`reasonkit.types.Frames.metadata`): Qwen2.5-VL derives its temporal position ids from the sampled fps,
Qwen3-VL writes ``<t seconds>`` before every temporal patch into the prompt.
"""

from __future__ import annotations

from typing import Any

from reasonkit.types import Frames

# Passed with every video; the per-frame pixel cap is the frame spec's job (reasonkit.media.sampling already
# applies qwen-vl-utils' rules), so the processor's own cap stays off and says nothing.
VIDEO_OPTIONS: dict[str, Any] = {"do_sample_frames": False, "do_resize": False}


def chat_text(processor, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
    """The model's chat template rendered to text (video placeholders not yet expanded)."""
    return processor.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)


def video_kwargs(processor, frames: list[Frames]) -> dict[str, Any]:
    """Processor keyword arguments for pre-sampled, pre-sized clips."""
    options = dict(VIDEO_OPTIONS)
    if hasattr(type(getattr(processor, "video_processor", None)), "cap_pixels_per_frame"):  # transformers >= 5.18
        options["cap_pixels_per_frame"] = False  # sizes are final already (do_resize=False); silences its warning
    return {"videos": [f.array for f in frames], "video_metadata": [f.metadata() for f in frames], **options}


def model_inputs(processor, messages: list[list[dict[str, Any]]], frames: list[Frames | None], *,
                 generation_prompt: bool = True, padding: bool = False) -> dict[str, Any]:
    """Processor output (input_ids with expanded video placeholders, attention mask, pixel values, grid sizes)
    for a batch of conversations; ``frames[i]`` is conversation i's clip or None. A batch is all-video or
    all-text (Qwen's processors take one flat list of videos)."""
    texts = [chat_text(processor, m, generation_prompt=generation_prompt) for m in messages]
    kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt"}
    if padding:
        kwargs["padding"] = True
    clips = [f for f in frames if f is not None]
    if clips:
        if len(clips) != len(frames):
            raise ValueError("a batch must be all-video or all-text")
        kwargs.update(video_kwargs(processor, clips))
    return dict(processor(**kwargs))


def vllm_video(frames: Frames) -> tuple[Any, dict[str, Any]]:
    """The ``multi_modal_data["video"]`` entry for vLLM: the same arrays and metadata, vLLM's sampling off."""
    return frames.array, {**frames.metadata(), "do_sample_frames": False, "video_backend": "pyav"}

