"""SFT on one GPU: `reasonkit train sft` (the shipped qwen2.5-vl-3b-sft recipe, bench overrides only) vs the
plain-transformers loop of plain_hf_baseline.py, in one device call; prints tokens/s, peak memory and ratios.

Each configuration NAME@MB is one reasonkit process: ``shipped`` is the recipe as shipped; other names add one
change (see CONFIGS) or switch one lean feature off (run_reasonkit.py's levers), so each lever is measured.

  python3 bench/gpu/sft.py --baseline plain_hf_baseline.py --configs shipped@2,shipped@4,gc-off@2
  python3 bench/gpu/sft.py --tiny ...   # CPU dry run of the plumbing (tiny model, short clips)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, build_model, log, median, metrics, plain_baseline, run, run_trainer, sft_data  # noqa: E402

RECIPES = HERE.parents[1] / "recipes"
FREEZE = 'policy.freeze_pattern=["^model\\\\.visual\\\\."]'
CONFIGS = {  # name -> (levers, extra overrides)
    "shipped": ([], []),
    "gc-off": ([], ["policy.model_gradient_checkpointing=false"]),
    "hf-loss": (["hf-loss"], []),
    "no-window-batching": (["no-window-batching"], []),
    "frozen-vision": ([], [FREEZE]),
    "frozen-vision-no-skip": (["no-frozen-skip"], [FREEZE]),
    "gc-off-frozen-vision": ([], ["policy.model_gradient_checkpointing=false", FREEZE]),
    "zero3": ([], ["train.deepspeed.zero_stage=3"]),
    "offload": ([], ["train.deepspeed.offload_optimizer=true"]),
    "bf16-master": ([], ["train.deepspeed.bf16_master_weights=true"]),
    "bf16-master-zero2": ([], ["train.deepspeed.bf16_master_weights=true", "train.deepspeed.zero_stage=2"]),
    "gc-every2": ([], ["policy.model_gradient_checkpointing_every=2"]),
    "frozen-vision-gc-every2": ([], [FREEZE, "policy.model_gradient_checkpointing_every=2"]),
}


def reasonkit_run(name: str, mb: int, *, model: Path, data: Path, out: Path, steps: int, tiny: bool,
                  recipe: Path) -> dict:
    levers, extra = CONFIGS[name]
    run_dir = out / f"rk-{name}-mb{mb}"
    frames = 4 if tiny else 8
    pixels = 56 * 56 if tiny else 448 * 448
    overrides = [
        f"policy.model_name_or_path={model}", f"train.train_policy.dataset.path={data}", f"train.output_dir={run_dir}",
        f"train.train_batch_per_replica={mb}", f"train.train_policy.mini_batch={mb}", f"train.max_steps={steps}",
        "train.epoch=100", "train.ckpt.enable_checkpoint=false", "train.ckpt.export_safetensors=false",
        "logging.logger=[\"jsonl\"]", "train.train_policy.overlong=truncate", "train.train_policy.dataset.test_size=0",
        f"policy.model_max_length={256 if tiny else 4096}", "frames.fps=8", f"frames.min_frames={frames}",
        f"frames.max_frames={frames}", f"frames.min_pixels={pixels}", f"frames.max_pixels={pixels}", *extra]
    result_path = out / f"rk-{name}-mb{mb}.json"
    result = run_trainer("sft", recipe, result_path, levers, overrides, f"reasonkit sft {name}@{mb}")
    steps_logged = metrics(run_dir)
    measured = steps_logged[2:] if len(steps_logged) > 2 else steps_logged[1:]
    result["tokens_per_s"] = median([m["tokens_per_s"] for m in measured])
    result["losses"] = [round(m["loss"], 4) for m in steps_logged]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-vl-3b")
    ap.add_argument("--configs", default="shipped@2,shipped@4")
    ap.add_argument("--baseline", type=Path, help="plain_hf_baseline.py; omitted: no plain run")
    ap.add_argument("--plain-mbs", default="2,4")
    ap.add_argument("--plain-frozen", type=int, default=0, help="1: the plain loop's vision-frozen runs too")
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per reasonkit run (first 2 not timed)")
    ap.add_argument("--model", type=Path, help="an existing model folder (default: built here)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bench-out")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/rk-bench-sft")
    recipe = RECIPES / ("qwen2.5-vl-3b-sft.toml" if "3b" in args.shape else "cosmos-reason1-7b-sft.toml")
    if args.tiny:
        model = args.model or work / "tiny-model"
        if not (model / "config.json").exists():
            run([sys.executable, "-m", "reasonkit", "synth", "model", "--out", str(model)], "synth tiny")
    else:
        model = args.model or build_model(work / args.shape, args.shape)
    from common import write_clip  # noqa: F401  (PyAV must import before any run is started)

    data = work / "data"
    if not (data / "robovqa").exists():
        if args.tiny:
            import common

            common.FRAMES, common.SIZE = 4, 56
        sft_data(data, rows=8 if args.tiny else 16)
    plain = {}
    if args.baseline:
        short = "7b" if "7b" in args.shape else "3b"
        plain = plain_baseline(args.baseline, args.out / "plain", f"ceil,sft{short}",
                               "--sft-mbs", args.plain_mbs, "--sft-frozen", str(args.plain_frozen),
                               "--train-warmup", "1", "--train-reps", "3", "--budget-s", "300",
                               *(["--tiny"] if args.tiny else []))
    results = {}
    for spec in args.configs.split(","):
        name, mb = spec.split("@")
        results[spec] = reasonkit_run(name, int(mb), model=model, data=data, out=args.out, steps=args.steps,
                                      tiny=args.tiny, recipe=recipe)
        log(spec, json.dumps(results[spec]))
    (args.out / "sft_results.json").write_text(json.dumps({"plain": plain, "reasonkit": results}, indent=1))
    report(plain, results, "7b" if "7b" in args.shape else "3b")


def report(plain: dict, results: dict, short: str) -> None:
    section = plain.get(f"sft_{short}", {})
    full = section.get("full", {}).get("mb", {})
    frozen = section.get("frozen_vision", {}).get("mb", {})
    best = section.get("full", {}).get("best_tokens_per_s")
    peak_flops = plain.get("ceilings", {}).get("matmul", {}).get("tflops_median")
    flops = section.get("full", {}).get("flops", {}).get("model_flops_per_sample")
    print("\nplain loop (full FT):", {k: (round(v.get("tokens_per_s", 0)), v.get("peak_alloc_gib")) for k, v in
                                     full.items()}, "frozen vision:",
          {k: (round(v.get("tokens_per_s", 0)), v.get("peak_alloc_gib")) for k, v in frozen.items()})
    print(f"{'config':28s} {'tok/s':>8s} {'peak GiB':>9s} {'vs plain same mb':>17s} {'vs plain best':>14s} "
          f"{'MFU':>6s}")
    for spec, r in results.items():
        mb = spec.split("@")[1]
        tps = r.get("tokens_per_s")
        same = full.get(mb, {}).get("tokens_per_s")
        mfu = (tps / 4096 * flops / (peak_flops * 1e12)) if (tps and flops and peak_flops) else None
        print(f"{spec:28s} {tps or 0:8.0f} {r.get('peak_alloc_gib') or 0:9.1f} "
              f"{(tps / same) if tps and same else float('nan'):17.2f} "
              f"{(tps / best) if tps and best else float('nan'):14.2f} "
              f"{100 * mfu if mfu else float('nan'):5.1f}%  {r.get('error') or ''}")


if __name__ == "__main__":
    main()
