"""How often two correct bf16 greedy decoders agree on random weights: transformers' ``generate`` against itself.

Issue #17 asks the engine's bf16 greedy tokens to agree with ``generate``'s on >= 99% of the bench prompts'
tokens; measured, they agree on 2-6% (bench/RESULTS.md). This runs ``generate`` twice on the same model and
inputs (the eval bench's 7B shape, 8 prompts of 16 x 448² video, 512 new tokens), once with SDPA's fused kernels
and once with SDPA's math kernel, and reports the same agreement figures plus each run's teacher-forced top-1
(generate.py). If ``generate`` agrees with itself no better than with the engine, the gap is bf16 near-ties on
near-flat random-weight logits, not the engine.

  python3 bench/gpu/greedy_agreement.py [--rows 8] [--new 512]     (bash bench/gpu/device.sh agree)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from generate import RESULTS, agreement, build, clip_inputs, log, save, teacher_forced_top1, timed
from torch.nn.attention import SDPBackend, sdpa_kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--new", type=int, default=512)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run (tiny shape, 8 new tokens)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bench-out")))
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames, size, new = (4, 56, 8) if args.tiny else (16, 448, args.new)
    model, tok = build("tiny" if args.tiny else "qwen2.5-vl-7b", device)
    batch, _ = clip_inputs(model, args.rows, frames, size, seed=args.rows)
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id,
                  max_new_tokens=new, min_new_tokens=new)
    r = RESULTS.setdefault("agreement", {"rows": args.rows, "new_tokens": new, "dtype": str(model.dtype)})
    runs = {}
    with torch.inference_mode():
        for name, backends in (("fused", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                          SDPBackend.CUDNN_ATTENTION]), ("math", [SDPBackend.MATH])):
            with sdpa_kernel(backends if device == "cuda" else [SDPBackend.MATH]):
                dt, out = timed(model.generate, **batch, **greedy)
            runs[name] = out[:, batch["input_ids"].shape[1]:].tolist()
            r[f"{name}_s"] = dt
            r[f"{name}_teacher_forced_top1_pct"] = teacher_forced_top1(model, batch, runs[name])
            log(f"generate, SDPA {name} kernels: {dt:.1f}s, teacher-forced top-1 "
                f"{r[f'{name}_teacher_forced_top1_pct']:.1f}%")
    r.update(agreement(runs["fused"], runs["math"]))
    log(f"generate vs generate (fused vs math SDPA), {model.dtype}: equal tokens {r['equal_tokens_pct']:.1f}%, "
        f"common prefix {r['common_prefix_pct']:.1f}%")
    save(args.out)


if __name__ == "__main__":
    main()
