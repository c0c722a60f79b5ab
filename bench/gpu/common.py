"""Shared pieces of the GPU benches: the bench data (real mp4 clips at 448x448, upstream-format rows), running
`plain_hf_baseline.py` and reasonkit in child processes of one device call, and reading their figures back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMES, SIZE = 8, 448  # the anchor: 8-frame 448x448 video inside 4096 tokens per sample


def log(*parts) -> None:
    print(time.strftime("[%H:%M:%S]"), *parts, flush=True)


def write_clip(path: Path, seed: int, frames: int = FRAMES, size: int = SIZE, fps: int = 8) -> Path:
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=(size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.roll(base, 8 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def words(n: int, seed: int) -> str:
    import random

    vocab = "the ball moves left right up down fast slow red blue green box falls rolls stops hits wall floor"
    vocab = (vocab + " because then after before first second third count objects scene camera frame time").split()
    rng = random.Random(seed)
    return " ".join(rng.choice(vocab) for _ in range(n))


def sft_data(root: Path, rows: int = 16, clips: int = 4) -> Path:
    """``root/robovqa/bench_understanding.json`` (the shipped SFT recipe's subset/split layout): long answers
    that the recipe's truncation cuts at exactly model_max_length tokens."""
    folder = root / "robovqa"
    for c in range(clips):
        write_clip(folder / f"clip{c}.mp4", seed=c)
    data = [{"video": f"clip{r % clips}.mp4", "conversations": [
        {"role": "user", "content": "Describe what happens in the video, step by step."},
        {"role": "assistant", "content": words(4000, seed=r)}]} for r in range(rows)]
    (folder / "bench_understanding.json").write_text(json.dumps(data))
    return root


def rl_data(root: Path, rows: int = 16, clips: int = 4) -> Path:
    folder = root / "rl"
    for c in range(clips):
        write_clip(folder / f"clip{c}.mp4", seed=c)
    data = [{"video": f"clip{r % clips}.mp4", "qa_pairs": [{
        "question": words(40, seed=100 + r) + "?", "index2ans": {"A": "left", "B": "right", "C": "up", "D": "down"},
        "answer": "A"}]} for r in range(rows)]
    (folder / "bench_rl.json").write_text(json.dumps(data))
    return folder / "bench_rl.json"


def build_model(out: Path, shape: str) -> Path:
    if not (out / "config.json").exists():
        run([sys.executable, "-m", "reasonkit", "synth", "model", "--shape", shape, "--out", str(out)], "synth")
    return out


def run(cmd: list[str], name: str, timeout: float = 540, env: dict | None = None) -> int:
    log(f"{name}: {' '.join(cmd)}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, timeout=timeout, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    out_dir = Path(os.environ.get("OUT", "/tmp/bench-out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "children.log").open("a") as f:
        f.write(f"\n===== {name} (rc {proc.returncode}, {time.perf_counter() - start:.0f}s)\n{proc.stdout[-20000:]}"
                f"\n----- stderr\n{proc.stderr[-20000:]}\n")
    if proc.returncode:
        log(f"{name} FAILED rc={proc.returncode}: {proc.stderr.strip()[-1500:]}")
    else:
        log(f"{name}: done in {time.perf_counter() - start:.0f}s")
    return proc.returncode


def plain_baseline(script: Path, out: Path, sections: str, *args: str, timeout: float = 400) -> dict:
    """Run the plain-transformers anchor in its own process; returns its results.json ({} if it failed)."""
    out.mkdir(parents=True, exist_ok=True)
    run([sys.executable, str(script), "--sections", sections, "--out", str(out), *args], f"plain:{sections}",
        timeout=timeout)
    path = out / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def metrics(out: Path) -> list[dict]:
    path = out / "logs" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def run_trainer(kind: str, recipe: Path, result_path: Path, levers, overrides, label: str) -> dict:
    """One `reasonkit train <kind>` in its own process (run_reasonkit.py) with bench levers and overrides; its
    result JSON, or an error record when it wrote none."""
    cmd = [sys.executable, str(HERE / "run_reasonkit.py"), kind, str(recipe), str(result_path)]
    for lever in levers:
        cmd += ["--lever", lever]
    for item in overrides:
        cmd += ["--set", item]
    run(cmd, label)
    return json.loads(result_path.read_text()) if result_path.exists() else {"error": "no result"}
