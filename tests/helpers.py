"""Test helpers: real mp4 clips written with PyAV, and upstream-format benchmark folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_clip(path: Path, *, frames: int = 16, size: tuple[int, int] = (64, 96), fps: int = 8,
               seed: int = 0) -> Path:
    """An h264 clip whose bright vertical bar moves right by a step per frame (so frame order is visible)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = base.copy()
            col = i * max(1, (w - 4) // frames)
            img[:, col:col + 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_upstream_benchmark(data_dir: Path, name: str, entries: list[dict], clips: dict[str, int]) -> Path:
    """Write ``<data_dir>/benchmark/<name>/<name>_benchmark_qa_pairs.json`` and the listed clips
    (``{"clips/x.mp4": n_frames}``; a negative count writes a corrupt file)."""
    root = data_dir / "benchmark" / name
    root.mkdir(parents=True, exist_ok=True)
    for rel, n in clips.items():
        if n < 0:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
        else:
            write_clip(root / rel, frames=n, seed=len(rel))
    (root / f"{name}_benchmark_qa_pairs.json").write_text(json.dumps(entries, indent=1))
    return root


def robovqa_like(data_dir: Path) -> Path:
    """Several questions per video, list and dict qa_pairs, `correct_answer`, a missing and a corrupt clip."""
    entries = [
        {"video": "clips/v1.mp4", "qa_pairs": [
            {"question": "Is the arm moving?", "index2ans": {"A": "yes", "B": "no"}, "answer": "A"},
            {"question": "What is grasped?", "index2ans": {"A": "cup", "B": "plate", "C": "fork"},
             "correct_answer": "C"},
        ]},
        {"video": "clips/v2.mp4", "qa_pairs": {"question": "Task done?", "index2ans": {"A": "yes", "B": "no"},
                                               "answer": "B"}},
        {"video": "clips/missing.mp4", "qa_pairs": {"question": "Where?", "index2ans": {"A": "l", "B": "r"},
                                                    "answer": "A"}},
        {"video": "clips/corrupt.mp4", "qa_pairs": {"question": "Why?", "index2ans": {"A": "x", "B": "y"},
                                                    "answer": "B"}},
    ]
    return make_upstream_benchmark(data_dir, "robovqa", entries,
                                   {"clips/v1.mp4": 24, "clips/v2.mp4": 12, "clips/corrupt.mp4": -1})


def write_run(results: Path, slug: str, records: list[dict], *, dataset: str = "ds", answer_type: str = "letter",
              seed: int = 1, model: str | None = None, fingerprint: str = "f" * 16) -> None:
    """A result file and manifest in the layout `reasonkit eval` writes (fast: no model, no clips)."""
    from reasonkit.evaluate.store import ResultStore

    store = ResultStore(results / slug / dataset / answer_type / f"seed{seed}.jsonl")
    store.open({"benchmark": dataset, "model": model or slug, "answer_type": answer_type, "seed": seed,
                "n_total": len(records), "model_fingerprint": fingerprint, "config_hash": "c",
                "primary_scorer": "upstream"}, resume=False)
    store.append([{**r, "dataset": dataset, "seed": seed} for r in records])
