"""One reasonkit training run for the GPU benches, in its own process (a clean CUDA context and peak-memory
counter per configuration). Levers switch single speed/memory features off, so each is measured against the
run with everything on:

  hf-loss            SFT loss through transformers' own path (full-sequence logits, upcast to fp32)
  hf-logps           GRPO log-probs from full completion logits (transformers' logits_to_keep path)
  no-window-batching vision attention one sdpa call per window (transformers' sdpa path)
  no-frozen-skip     a frozen vision tower still runs its backward (the checkpointing input hook)
  no-video-dedupe    GRPO: each completion re-encodes its prompt's clip

Usage: run_reasonkit.py sft|grpo RECIPE RESULT_JSON [--lever NAME ...] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time


def apply_levers(levers: list[str]) -> None:
    from reasonkit.train import lean
    from reasonkit.train.grpo import sequences

    if "hf-loss" in levers:
        class FullLogitsLoss:
            def __init__(self, labels, chunk_tokens=None):
                self.labels = labels

            def __call__(self, hidden, lm_head):
                from transformers.loss.loss_utils import ForCausalLMLoss
                from transformers.modeling_outputs import CausalLMOutputWithPast

                logits = lm_head(hidden)
                return CausalLMOutputWithPast(loss=ForCausalLMLoss(logits, self.labels.to(logits.device),
                                                                   vocab_size=logits.shape[-1]))

        lean.LabelLoss = FullLogitsLoss
    if "hf-logps" in levers:
        sequences.lean_module = lambda model: None
    if "no-window-batching" in levers:
        lean.BATCH_VISION_WINDOWS = False
    if "no-frozen-skip" in levers:
        lean.skip_frozen_vision_backward = lambda model: 0
    if "no-video-dedupe" in levers:
        sequences.shared_videos = lambda items: None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["sft", "grpo"])
    ap.add_argument("recipe")
    ap.add_argument("result")
    ap.add_argument("--lever", action="append", default=[])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    import torch

    from reasonkit.plugins import get_trainer
    from reasonkit.train.recipe import load_recipe

    apply_levers(args.lever)
    recipe = load_recipe(args.recipe, args.overrides)
    start = time.perf_counter()
    error = None
    try:
        get_trainer(args.kind)(recipe)
    except Exception as exc:  # noqa: BLE001 - an OOM is a result too
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
    result = {"levers": args.lever, "overrides": args.overrides, "wall_s": time.perf_counter() - start,
              "error": error, "output_dir": recipe.train.output_dir}
    if torch.cuda.is_available():
        result.update(peak_alloc_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                      peak_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 2))
    with open(args.result, "w") as f:
        json.dump(result, f)
    if error:
        raise SystemExit(error)


if __name__ == "__main__":
    main()
