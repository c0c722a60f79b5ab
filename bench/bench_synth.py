"""How long the small offline world takes to build: the tiny model and a 200-question synthphys benchmark.

Each build runs as the user runs it (`reasonkit synth ...` in a fresh process: interpreter start and imports
included). Baseline measured in the same run: rendering + encoding the same 200 clips in-process with nothing else
(the floor of a benchmark build), so the ratio shows what start-up, annotation writing and balancing add.

    .venv/bin/python bench/bench_synth.py [--n 200] [--train-n 800]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasonkit", "synth", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--train-n", type=int, default=800)
    args = parser.parse_args()
    n = str(args.n)

    from reasonkit.synth.benchmark import make_scenes, write_clip
    from reasonkit.synth.scenes import TASKS, render_clip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t_tiny = cli("model", "--out", str(root / "tiny"), "--size", "tiny")
        t_small = cli("model", "--out", str(root / "small"), "--size", "small")
        t_test = cli("benchmark", "--out", str(root / "test"), "--n", n, "--train-n", "0")
        t_full = cli("benchmark", "--out", str(root / "full"), "--n", n, "--train-n", str(args.train_n))
        (root / "floor").mkdir()
        start = time.perf_counter()
        for i, (scene, _) in enumerate(make_scenes(args.n, 0, 0, tuple(TASKS))):
            write_clip(root / "floor" / f"{i}.mp4", render_clip(scene))
        t_floor = time.perf_counter() - start
        tiny_kib = sum(p.stat().st_size for p in (root / "tiny").iterdir()) / 1024
        small_kib = sum(p.stat().st_size for p in (root / "small").iterdir()) / 1024
        full_mib = sum(p.stat().st_size for p in (root / "full").rglob("*") if p.is_file()) / 2**20

    total = t_tiny + t_test
    print(f"synth model --size tiny          {t_tiny:6.2f} s  ({tiny_kib:.0f} KiB)")
    print(f"synth model --size small         {t_small:6.2f} s  ({small_kib:.0f} KiB)")
    print(f"synth benchmark --n {n} (test)    {t_test:6.2f} s")
    print(f"synth benchmark --n {n} + {args.train_n} train {t_full:6.2f} s  ({full_mib:.1f} MiB)")
    print(f"baseline: render+encode {n} clips {t_floor:6.2f} s  -> test build / baseline {t_test / t_floor:.2f}x")
    print(f"tiny model + {n}-question benchmark: {total:.1f} s (budget 60 s): {'OK' if total < 60 else 'OVER'}")


if __name__ == "__main__":
    main()
