"""Build Qwen3-VL checkpoints (the Cosmos-Reason2 architecture) with the real transformers classes: a tiny
random-init one for CPU tests and learning runs, and random weights at the public 2B / 8B shapes for GPU work.

Same tokenizer and chat template as the tiny Qwen2.5-VL (reasonkit.synth.tokenizer); what differs is the family's
data: 16-px patches merged 2×2 (32-px frame sides), a ``Qwen3VLVideoProcessor`` that writes ``<t seconds>``
before each temporal patch, DeepStack feature injection, an explicit ``head_dim`` and interleaved M-RoPE. The
tiny widths follow reasonkit.synth.model's rules (32-dim heads for vLLM's CPU attention, ``1/sqrt(width)``
initialisation, untied embeddings, a small rope theta).
"""

from __future__ import annotations

from pathlib import Path

from reasonkit.synth.model import HEAD_DIM, MROPE_SECTION, ROPE_THETA, SIZES, _set_generation_ids

PATCH, TEMPORAL_PATCH, MERGE = 16, 2, 2
FACTOR = PATCH * MERGE
VIDEO_PIXELS = (FACTOR * FACTOR, 768 * FACTOR * FACTOR)  # per video: our frame spec sizes frames (do_resize off)
IMAGE_PIXELS = (FACTOR * FACTOR, 1024 * FACTOR * FACTOR)

# Public shapes (config.json of Qwen/Qwen3-VL-{2B,8B}-Instruct, the Cosmos-Reason2-{2B,8B} bases).
SHAPES = {
    "qwen3-vl-2b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128),
        vision=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                    deepstack_visual_indexes=[5, 11, 17]),
        tie=True),
    "qwen3-vl-8b": dict(
        text=dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128),
        vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16,
                    deepstack_visual_indexes=[8, 16, 24]),
        tie=False),
}
PUBLIC_ROPE = {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
               "mrope_interleaved": True}


def _token_ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in
            ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}


def _config(tokenizer, text: dict, vision: dict, tie: bool):
    from transformers import Qwen3VLConfig

    ids = _token_ids(tokenizer)
    text = dict(text, bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(vision, patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH,
                  out_hidden_size=text["hidden_size"])
    return Qwen3VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=tie,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def build_config(size: str, tokenizer):
    """A tiny Qwen3-VL at reasonkit's "tiny"/"small" widths."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    s = SIZES[size]
    text = dict(vocab_size=len(tokenizer), hidden_size=s["hidden"], intermediate_size=s["mlp"],
                num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
                head_dim=HEAD_DIM, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA, "mrope_section": MROPE_SECTION,
                                 "mrope_interleaved": True},
                initializer_range=s["hidden"] ** -0.5)
    vision = dict(depth=s["v_depth"], hidden_size=s["v_hidden"], intermediate_size=s["v_mlp"], num_heads=s["v_heads"],
                  # a learned 16x16 position grid (interpolated to the frame's patch grid); DeepStack taps block 0
                  num_position_embeddings=256, deepstack_visual_indexes=[0], hidden_act="gelu_pytorch_tanh",
                  initializer_range=s["v_hidden"] ** -0.5)
    return _config(tokenizer, text, vision, tie=False)


def build_shape_config(shape: str, tokenizer, *, layers: int | None = None, vision_depth: int | None = None):
    """A public Qwen3-VL shape; ``layers`` / ``vision_depth`` cut the depth (same widths) for quick GPU tests."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    s = SHAPES[shape]
    text = dict(s["text"], max_position_embeddings=262144, rms_norm_eps=1e-6, hidden_act="silu",
                rope_parameters=dict(PUBLIC_ROPE))
    vision = dict(s["vision"], num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh")
    if layers is not None:
        text["num_hidden_layers"] = layers
    if vision_depth is not None:
        vision["depth"] = vision_depth
        vision["deepstack_visual_indexes"] = [i for i in vision["deepstack_visual_indexes"] if i < vision_depth] or [0]
    return _config(tokenizer, text, vision, tie=s["tie"])


def build_processor(tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    # Qwen3-VL normalises images and videos with mean = std = 0.5 (its public processor configs). The image
    # processor's values matter for videos too: vLLM normalises every input with the image processor's.
    common = dict(patch_size=PATCH, temporal_patch_size=TEMPORAL_PATCH, merge_size=MERGE,
                  image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=IMAGE_PIXELS[0], max_pixels=IMAGE_PIXELS[1], **common),
        video_processor=Qwen3VLVideoProcessor(size={"shortest_edge": VIDEO_PIXELS[0],
                                                    "longest_edge": VIDEO_PIXELS[1]}, **common),
        tokenizer=tokenizer, chat_template=tokenizer.chat_template,
    )


def _write(model, tokenizer, out: Path) -> Path:
    _set_generation_ids(model, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return out


def build_tiny_model(out_dir: Path | str, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-init tiny Qwen3-VL, its tokenizer and processor to ``out_dir`` (deterministic per seed)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from reasonkit.synth.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(build_config(size, tokenizer)).to(torch.float32)
    return _write(model, tokenizer, Path(out_dir))


def build_shape_model(out_dir: Path | str, shape: str, *, layers: int | None = None,
                      vision_depth: int | None = None, seed: int = 0, device: str | None = None) -> Path:
    """Random bf16 weights at a public Qwen3-VL shape with reasonkit's tokenizer and processor."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from reasonkit.synth.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    config = build_shape_config(shape, tokenizer, layers=layers, vision_depth=vision_depth)
    torch.manual_seed(seed)
    with torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    return _write(model, tokenizer, Path(out_dir))
