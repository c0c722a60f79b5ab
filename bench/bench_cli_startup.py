"""`reasonkit --help` start-up time against `python -c pass`, measured side by side (alternating runs).

Usage: .venv/bin/python bench/bench_cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    baseline, cli = [], []
    for _ in range(runs):  # alternate so load changes hit both equally
        baseline.append(timed([sys.executable, "-c", "pass"]))
        cli.append(timed([sys.executable, "-m", "reasonkit", "--help"]))
    b, c = statistics.median(baseline), statistics.median(cli)
    print(f"python -c pass     median {b * 1000:7.1f} ms")
    print(f"reasonkit --help   median {c * 1000:7.1f} ms")
    print(f"ratio {c / b:.2f}x; reasonkit's own import cost {(c - b) * 1000:.0f} ms over {runs} runs")


if __name__ == "__main__":
    main()
