"""SFT throughput (tokens/s): `reasonkit train sft` (DeepSpeed ZeRO-2, one process) against a plain
torch + transformers loop (AdamW, same model, same rows, same batch size, same collator), in one run.

Steady state: the first step of each side is excluded (allocator warm-up, DeepSpeed's first-step set-up).

Usage: .venv/bin/python bench/bench_sft.py [--size small] [--steps 12] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

RECIPE = """
[train]
max_steps = {steps}
output_dir = "{out}"
optm_lr = 1e-4
optm_weight_decay = 0.0
param_dtype = "float32"
train_batch_per_replica = {batch}
[train.deepspeed]
zero_stage = 2
[train.train_policy]
type = "sft"
dataset.name = "synthphys"
dataset.path = "{data}"
mini_batch = {batch}
[train.ckpt]
enable_checkpoint = false
export_safetensors = false
[policy]
model_name_or_path = "{model}"
[logging]
logger = ["jsonl"]
[frames]
fps = 4
max_frames = 16
min_pixels = 784
max_pixels = 12544
"""


def plain_loop(model_dir: str, rows, spec, steps: int, batch: int) -> list[float]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.media import load_frames
    from reasonkit.train.collate import SFTCollator

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    collator = SFTCollator(processor, max_length=4096, system_prompt="Answer the questions.")
    rates = []
    for step in range(steps):
        start = time.perf_counter()
        chunk = [rows[(step * batch + i) % len(rows)] for i in range(batch)]
        enc = collator.pad([collator.encode_one(r, load_frames(r["video"], spec)) for r in chunk])
        loss = model(**enc).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        rates.append(int(enc["attention_mask"].sum()) / (time.perf_counter() - start))
    return rates[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    from reasonkit.plugins import get_dataset, get_trainer
    from reasonkit.synth.benchmark import FRAME_SPEC, build_benchmark
    from reasonkit.synth.model import build_tiny_model
    from reasonkit.train.recipe import load_recipe

    tmp = Path(tempfile.mkdtemp(prefix="rk-bench-sft-"))
    model = str(build_tiny_model(tmp / "model", size=args.size))
    build_benchmark(tmp / "data", n=4, train_n=args.steps * args.batch, seed=0)
    rows = get_dataset("synthphys")(str(tmp / "data"), split="sft")
    plain = plain_loop(model, rows, FRAME_SPEC, args.steps, args.batch)
    recipe_path = tmp / "recipe.toml"
    recipe_path.write_text(RECIPE.format(steps=args.steps, out=tmp / "run", data=tmp / "data", model=model,
                                         batch=args.batch))
    get_trainer("sft")(load_recipe(recipe_path))
    logged = [json.loads(line) for line in (tmp / "run" / "logs" / "metrics.jsonl").read_text().splitlines()]
    ours = [r["tokens_per_s"] for r in logged][1:]
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"model {args.size}, batch {args.batch}, steps {args.steps} (first excluded), medians")
    print(f"plain torch+transformers loop  {p:8.0f} tokens/s")
    print(f"reasonkit train sft (ZeRO-2)   {o:8.0f} tokens/s")
    print(f"ratio reasonkit/plain          {o / p:.2f}x")


if __name__ == "__main__":
    main()
