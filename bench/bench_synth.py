"""How long the small offline world takes to build: the tiny model and a 200-question synthphys benchmark.

Baseline measured in the same run: rendering + encoding the same clips with nothing else (the floor of
``build_benchmark``), so the ratio shows what annotation writing, balancing and copying cost on top.

    .venv/bin/python bench/bench_synth.py [--n 200] [--train-n 800]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--train-n", type=int, default=800)
    args = parser.parse_args()

    _, t_import = timed(lambda: __import__("transformers") and __import__("torch"))
    from reasonkit.synth.benchmark import build_benchmark, make_scenes, write_clip
    from reasonkit.synth.model import build_tiny_model
    from reasonkit.synth.scenes import TASKS, render_clip
    from reasonkit.synth.tokenizer import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, t_tok = timed(build_tokenizer)
        _, t_tiny = timed(lambda: build_tiny_model(root / "tiny", size="tiny"))
        _, t_small = timed(lambda: build_tiny_model(root / "small", size="small"))
        _, t_test = timed(lambda: build_benchmark(root / "test-only", n=args.n, train_n=0))
        _, t_full = timed(lambda: build_benchmark(root / "full", n=args.n, train_n=args.train_n))

        def floor():
            (root / "floor").mkdir()
            for i, (scene, _) in enumerate(make_scenes(args.n, 0, 0, tuple(TASKS))):
                write_clip(root / "floor" / f"{i}.mp4", render_clip(scene))

        _, t_floor = timed(floor)
        size_kb = sum(p.stat().st_size for p in (root / "full").rglob("*") if p.is_file()) / 1024
        tiny_kb = sum(p.stat().st_size for p in (root / "tiny").iterdir()) / 1024

    total = t_tiny + t_test
    print(f"import torch+transformers      {t_import:6.2f} s (paid once, before the builds below)")
    print(f"tokenizer training             {t_tok:6.2f} s")
    print(f"build_tiny_model(tiny)         {t_tiny:6.2f} s  ({tiny_kb:.0f} KiB on disk)")
    print(f"build_tiny_model(small)        {t_small:6.2f} s")
    print(f"benchmark n={args.n} (test only)   {t_test:6.2f} s  ({1000 * t_test / max(args.n, 1):.1f} ms/clip)")
    print(f"benchmark n={args.n} + train {args.train_n}  {t_full:6.2f} s  ({size_kb / 1024:.1f} MiB on disk)")
    print(f"baseline render+encode n={args.n}  {t_floor:6.2f} s  -> build/baseline {t_test / t_floor:.2f}x")
    print(f"tiny model + {args.n}-question benchmark: {total:.1f} s (budget 60 s) {'OK' if total < 60 else 'OVER'}")


if __name__ == "__main__":
    main()
