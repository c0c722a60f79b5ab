"""GRPO step time, split into prompts / rollout / reward / train / weight sync, with `hf` rollouts (transformers
generate on the policy itself) against `vllm` rollouts (a colocated vLLM engine, weights pushed every step), on
the tiny Qwen2.5-VL and synthphys clips — both runs in this process, same recipe, same seeds.

    .venv/bin/python bench/bench_grpo.py [--steps 6] [--prompts 4] [--generations 8] [--max-tokens 64]

The random tiny model never emits a stop token, so every completion is exactly --max-tokens long: the rollout
work is the same for both engines. Step 1 (warm-up) is left out of the medians; vLLM's engine start is reported
on its own line. torch runs one thread in the trainer process (a shared 2-core machine; see tests/test_grpo.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "synthphys-grpo.toml"
PHASES = ["prompts", "rollout", "reward", "train", "weight_sync", "step"]


def run(backend: str, model: Path, data: Path, out: Path, args, engine=None) -> dict[str, float]:
    from reasonkit.train.grpo.trainer import train_grpo
    from reasonkit.train.recipe import load_recipe

    recipe = load_recipe(RECIPE, [
        f"policy.model_name_or_path={model}", f"train.train_policy.dataset.path={data}", f"train.output_dir={out}",
        f"train.max_steps={args.steps}", f"train.train_batch_per_replica={args.prompts * args.generations}",
        f"rollout.n_generation={args.generations}", f"rollout.max_response_length={args.max_tokens}",
        f"train.train_policy.mini_batch={args.prompts * args.generations}", f"rollout.batch_size={args.prompts}",
        f"rollout.backend={backend}", "train.train_policy.reward_function=[format, scorer:upstream]",
        "train.train_policy.filter_equal_rewards=false", "train.ckpt.enable_checkpoint=false",
        "train.ckpt.export_safetensors=false", "logging.logger=[jsonl]", "train.epoch=100"])
    train_grpo(recipe, rollout_backend=engine)
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()][1:]
    return {phase: statistics.median(r[f"time/{phase}"] for r in records) for phase in PHASES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    import torch

    from reasonkit.backends.vllm import VLLMBackend
    from reasonkit.synth.benchmark import build_benchmark
    from reasonkit.synth.model import build_tiny_model

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    model = build_tiny_model(root / "model", size="tiny", seed=0)
    build_benchmark(root / "data", name="synthphys", n=8, train_n=4 * args.prompts, seed=0)
    times = {"hf": run("hf", model, root / "data", root / "hf", args)}
    start = time.perf_counter()
    engine = VLLMBackend(str(model), dtype="float32", max_length=1024,
                         max_num_seqs=args.prompts * args.generations)
    engine_start = time.perf_counter() - start
    times["vllm"] = run("vllm", model, root / "data", root / "vllm", args, engine=engine)
    engine.close()

    print(f"\nGRPO step on the tiny model: {args.prompts} prompts x {args.generations} completions x "
          f"{args.max_tokens} tokens, median of steps 2..{args.steps} (seconds)")
    print(f"{'phase':<12} {'hf':>8} {'vllm':>8} {'hf/vllm':>8}")
    for phase in PHASES:
        hf, vl = times["hf"][phase], times["vllm"][phase]
        print(f"{phase:<12} {hf:8.3f} {vl:8.3f} {hf / vl if vl > 1e-6 else float('nan'):8.2f}")
    print(f"vLLM engine start (once per run): {engine_start:.1f} s; threads: torch 1 (trainer), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":  # vLLM spawns its engine process
    main()
