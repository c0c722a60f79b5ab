"""GRPO on one GPU: `reasonkit train grpo` with the hf rollout vs plain_hf_baseline.py's grpo section (4 video
prompts x 8 completions x 256 tokens, one optimizer step over the 32 sequences), in one device call; prints
the step time split and the ratio. Base recipe: the shipped synthphys-grpo.toml, at the bench's shape and sizes.

  python3 bench/gpu/grpo.py --baseline plain_hf_baseline.py --configs lean,no-video-dedupe
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, build_model, log, median, metrics, plain_baseline, rl_data, run, run_trainer  # noqa: E402

RECIPE = HERE.parents[1] / "recipes" / "synthphys-grpo.toml"
CONFIGS = {  # name -> (levers, extra overrides)
    "lean": ([], []),
    "no-video-dedupe": (["no-video-dedupe"], []),
    "hf-logps": (["hf-logps", "no-video-dedupe"], []),
    "gc-off": ([], ["policy.model_gradient_checkpointing=false"]),
}


def reasonkit_run(name: str, *, model: Path, data: Path, out: Path, steps: int, tiny: bool) -> dict:
    levers, extra = CONFIGS[name]
    run_dir = out / f"rk-grpo-{name}"
    frames, pixels, new = (4, 56 * 56, 8) if tiny else (8, 448 * 448, 256)
    overrides = [
        f"policy.model_name_or_path={model}", "train.train_policy.dataset.name=rl-json",
        f"train.train_policy.dataset.path={data}", "train.train_policy.dataset.split=null",
        f"train.output_dir={run_dir}", f"train.max_steps={steps}", "train.epoch=100",
        "train.train_batch_per_replica=32", "rollout.n_generation=8", "rollout.batch_size=4",
        f"rollout.max_response_length={new}", "train.train_policy.mini_batch=8", "train.param_dtype=bfloat16",
        "train.optm_lr=1e-6", "train.train_policy.filter_equal_rewards=false",
        "train.train_policy.reward_function=[\"format\"]", "policy.model_gradient_checkpointing=true",
        "policy.model_max_length=2048", "train.ckpt.enable_checkpoint=false", "train.ckpt.export_safetensors=false",
        "logging.logger=[\"jsonl\"]", "frames.fps=8", f"frames.min_frames={frames}", f"frames.max_frames={frames}",
        f"frames.min_pixels={pixels}", f"frames.max_pixels={pixels}", *extra]
    result_path = out / f"rk-grpo-{name}.json"
    result = run_trainer("grpo", RECIPE, result_path, levers, overrides, f"reasonkit grpo {name}")
    logged = metrics(run_dir)
    measured = logged[1:] or logged  # the first step pays the allocator's growth and kernel selection
    for key in ("time/step", "time/rollout", "time/train", "time/prompts", "completion_length_mean"):
        result[key] = median([m[key] for m in measured if key in m])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-vl-3b")
    ap.add_argument("--configs", default="lean")
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--steps", type=int, default=3, help="steps per reasonkit run (the first is not timed)")
    ap.add_argument("--plain-reps", type=int, default=2, help="timed plain steps (after one warm-up step)")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bench-out")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/rk-bench-grpo")
    if args.tiny:
        model = args.model or work / "tiny-model"
        if not (model / "config.json").exists():
            run([sys.executable, "-m", "reasonkit", "synth", "model", "--out", str(model)], "synth tiny")
        import common

        common.FRAMES, common.SIZE = 4, 56
    else:
        model = args.model or build_model(Path("/tmp/rk-bench-sft") / args.shape, args.shape)
    data = rl_data(work / "data", rows=8 if args.tiny else 16)
    plain = {}
    if args.baseline:
        plain = plain_baseline(args.baseline, args.out / "plain-grpo", "grpo", "--grpo-shape", "3b",
                               "--grpo-reps", str(args.plain_reps), "--budget-s", "330",
                               *(["--tiny"] if args.tiny else []))
    results = {}
    for name in args.configs.split(","):
        results[name] = reasonkit_run(name, model=model, data=data, out=args.out, steps=args.steps, tiny=args.tiny)
        log(name, json.dumps(results[name]))
    (args.out / "grpo_results.json").write_text(json.dumps({"plain": plain, "reasonkit": results}, indent=1))
    p = plain.get("grpo_3b", {})
    print(f"\nplain: step {p.get('step_s') or 0:.2f}s = generate {p.get('gen_s') or 0:.2f}s + train "
          f"{p.get('train_s') or 0:.2f}s")
    print(f"{'config':18s} {'step s':>7s} {'rollout':>8s} {'train':>7s} {'len':>5s} {'peak GiB':>9s} {'vs plain':>9s}")
    for name, r in results.items():
        step = r.get("time/step")
        ratio = step / p["step_s"] if step and p.get("step_s") else float("nan")
        print(f"{name:18s} {step or 0:7.2f} {r.get('time/rollout') or 0:8.2f} {r.get('time/train') or 0:7.2f} "
              f"{r.get('completion_length_mean') or 0:5.0f} {r.get('peak_alloc_gib') or 0:9.1f} {ratio:9.2f}  "
              f"{r.get('error') or ''}")


if __name__ == "__main__":
    main()
