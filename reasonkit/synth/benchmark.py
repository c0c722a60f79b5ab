"""Write the synthetic physical-reasoning benchmark (`synthphys`) and a disjoint training split to disk.

Layout (the benchmark part is exactly the upstream Cosmos-Reason1 format, see reasonkit.upstream_format)::

    <data_dir>/benchmark/<name>/<name>_benchmark_qa_pairs.json   [{"video": "clips/<id>.mp4", "qa_pairs": [qa]}]
    <data_dir>/benchmark/<name>/clips/<name>-test-NNNNN.mp4
    <data_dir>/sft/<name>/<name>_sft.json    [{"video": "clips/<id>.mp4", "conversations": [user, assistant]}]
    <data_dir>/sft/<name>/clips/<name>-train-NNNNN.mp4
    <data_dir>/rl/<name>/<name>_rl.json      [{"video": "clips/<id>.mp4", "qa_pairs": qa}]
    <data_dir>/rl/<name>/clips/<name>-train-NNNNN.mp4                (the same training clips, copied)

``qa`` is ``{"question", "index2ans": {"A": ...}, "answer": "B", "task": ...}``. Video paths are relative to the
JSON file that names them, so each folder is self-contained like the upstream SFT/RL datasets. The SFT user turn
is exactly the eval prompt text (``reasonkit.prompts.question_text(sample, "reasoning")``) and the assistant turn
is ``<think> reasoning </think>\\n\\n<answer>X</answer>``, so training matches evaluation.

Answers are balanced per task, both in value (direction, count, ...) and in letter position, and every question of
a task offers the same option set: the text alone carries no information about the answer (a model trained on
blank videos stays at chance). Options come in each task's fixed order by default (left, right, up, down; 1..4;
yes, no; objects in an order drawn independently of the answer), so the letter follows from what is seen; with
``shuffle_options=True`` the answer's letter is dealt independently of its value and the model must also look the
letter up among the options. Measured with CPU SFT of the tiny model: that in-context lookup was still unlearned
after 1,200 steps (the letter matched the model's own stated answer at chance rate), so shuffled options turn the
learning demo into a lookup-learning demo. Train and test scenes come from different random streams and share no
scene. Everything is a pure function of ``seed``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonkit.synth.scenes import FPS, N_VALUES, SIZE, TASKS, Scene, render_clip
from reasonkit.types import FrameSpec, Sample

# What evaluation samples from the clips: 4 frames at 2 fps from the 2 s clips, at their native 112x112, so each
# temporal patch (2 frames) pairs frames 0.6 s apart: motion shows as a ~20 px shift inside one patch. At 4 fps
# (8 frames, 8 px shifts) the tiny model did not learn which object is faster in 1,000 SFT steps; at 2 fps it did.
FRAME_SPEC = FrameSpec(fps=2.0, min_frames=4, max_frames=16, min_pixels=28 * 28, max_pixels=SIZE * SIZE)
LETTERS = "ABCDE"
CHANCE = {task: 1 / n for task, n in N_VALUES.items()}  # accuracy of a uniform guess, per question type
_TEST, _TRAIN = 0, 1  # random stream per split
_PLAN, _SCENE, _OPTIONS = 0, 1, 2  # sub-stream tags: every rng is default_rng([seed, split, tag, ...])


def parse_tasks(text: str | None) -> list[str]:
    """A ``--tasks`` value: comma-separated question types, or empty / 'all' for every type."""
    from reasonkit.errors import ReasonkitError

    if not text or text.strip() == "all":
        return list(TASKS)
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TASKS]
    if unknown or not chosen:
        raise ReasonkitError(f"--tasks: expected 'all' or some of {', '.join(TASKS)}, got {text!r}")
    return chosen


def make_scenes(n: int, seed: int, split: int, tasks: Sequence[str],
                exclude: frozenset[str] = frozenset()) -> list[tuple[Scene, int]]:
    """``n`` scenes (tasks interleaved) with the letter position of each answer; values and letters are dealt
    round-robin per task then shuffled, so both are balanced to within one."""
    rng = np.random.default_rng([seed, split, _PLAN])
    per_task = {t: [i for i in range(n) if tasks[i % len(tasks)] == t] for t in tasks}
    plan: dict[int, tuple[int, int]] = {}
    for task, indices in per_task.items():
        m = N_VALUES[task]
        values = rng.permutation([k % m for k in range(len(indices))])
        letters = rng.permutation([k % m for k in range(len(indices))])
        plan.update({i: (int(v), int(p)) for i, v, p in zip(indices, values, letters)})
    out = []
    for i in range(n):
        value, letter = plan[i]
        for attempt in range(100):  # positions are continuous: a clash with the other split is a rare event
            scene = TASKS[tasks[i % len(tasks)]](np.random.default_rng([seed, split, _SCENE, i, attempt]), value)
            if scene.signature() not in exclude:
                break
        else:
            raise RuntimeError(f"scene {i}: no scene outside the excluded split after 100 attempts")
        out.append((scene, letter))
    return out


def qa_record(scene: Scene, letter: int | None, rng: np.random.Generator) -> dict[str, Any]:
    """The upstream question dict: the answer's option goes to ``letter``, the others in random order; with
    ``letter=None`` the options keep the task's canonical order (the answer letter then follows the value)."""
    if letter is None:
        options, letter = list(scene.values), scene.answer
    else:
        others = [v for j, v in enumerate(scene.values) if j != scene.answer]
        others = [others[j] for j in rng.permutation(len(others))]
        options = [*others[:letter], scene.values[scene.answer], *others[letter:]]
    return {"question": scene.question, "index2ans": dict(zip(LETTERS, options)), "answer": LETTERS[letter],
            "task": scene.task}


def sft_row(video: str, qa: dict[str, Any], scene: Scene, name: str) -> dict[str, Any]:
    from reasonkit.prompts import question_text

    sample = Sample(id=video, dataset=name, video=None, question=qa["question"], choices=qa["index2ans"],
                    answer=qa["answer"])
    letter = qa["answer"]
    target = (f"<think> {scene.reasoning} The answer is ({letter}) {qa['index2ans'][letter]}. </think>\n\n"
              f"<answer>{letter}</answer>")
    return {"video": video, "conversations": [{"role": "user", "content": question_text(sample, "reasoning")},
                                              {"role": "assistant", "content": target}]}


def yuv420p_frame(rgb: np.ndarray):
    """A PyAV yuv420p frame from (H, W, 3) uint8 RGB (BT.601 limited range, what decoders assume for an untagged
    stream), converted here and written with zeroed row padding: swscale's RGB->YUV output (and the padding
    ``from_ndarray`` leaves) differed between calls on identical frames (PyAV 18), so the encoder saw different
    input."""
    import av

    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    h, w = r.shape
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = (128 - 0.148 * r - 0.291 * g + 0.439 * b).reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    v = (128 + 0.439 * r - 0.368 * g - 0.071 * b).reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v)):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : data.shape[1]] = np.clip(np.rint(data), 0, 255)
        plane.update(rows)
    return frame


def write_clip(path: Path, frames: np.ndarray) -> None:
    """Encode (T, H, W, 3) uint8 frames as H.264 yuv420p mp4 (MPEG-4 part 2 if libx264 is missing).
    The bytes depend only on the frames: one encoder thread, fully defined input frames, and no macroblock-tree /
    adaptive-quantisation / psy passes (with them, 1 clip in 3-10 came out different on a re-run, x264 core 165)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=FPS, options={
                "crf": "18", "preset": "fast", "threads": "1", "x264-params": "mbtree=0:aq-mode=0:psy=0"})
        except (av.error.FFmpegError, ValueError):  # pragma: no cover - FFmpeg builds without x264
            stream = out.add_stream("mpeg4", rate=FPS, options={"qscale": "2", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for array in frames:
            out.mux(stream.encode(yuv420p_frame(array)))
        out.mux(stream.encode())


def _write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


def _write_split(root: Path, name: str, split: str, scenes: list[tuple[Scene, int]], rng: np.random.Generator,
                 shuffle: bool):
    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for i, (scene, letter) in enumerate(scenes):
        video = f"clips/{name}-{split}-{i:05d}.mp4"
        write_clip(root / video, render_clip(scene))
        yield video, scene, qa_record(scene, letter if shuffle else None, rng)


def build_benchmark(data_dir: Path | str, name: str = "synthphys", n: int = 200, seed: int = 0,
                    train_n: int | None = None, tasks: Sequence[str] | None = None,
                    shuffle_options: bool = False) -> dict[str, Path]:
    """Write ``n`` test questions (one per clip) and ``train_n`` training rows (default ``4 * n``) under
    ``data_dir`` in the layout above; returns the paths of the three annotation files."""
    tasks = tuple(tasks or TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or n < 0 or (train_n or 0) < 0:
        raise ValueError(f"unknown tasks {unknown} (known: {list(TASKS)}) or negative size")
    train_n = 4 * n if train_n is None else train_n
    data_dir = Path(data_dir)
    bench, sft, rl = (data_dir / kind / name for kind in ("benchmark", "sft", "rl"))
    for folder in (bench, sft, rl):  # a rebuild must not keep stale clips from a larger earlier build
        shutil.rmtree(folder, ignore_errors=True)

    test = make_scenes(n, seed, _TEST, tasks)
    option_rng = np.random.default_rng([seed, _TEST, _OPTIONS])
    annotation = [{"video": video, "qa_pairs": [qa]}
                  for video, _, qa in _write_split(bench, name, "test", test, option_rng, shuffle_options)]
    _write_json(bench / f"{name}_benchmark_qa_pairs.json", annotation)

    train = make_scenes(train_n, seed, _TRAIN, tasks, exclude=frozenset(s.signature() for s, _ in test))
    option_rng = np.random.default_rng([seed, _TRAIN, _OPTIONS])
    sft_rows, rl_rows = [], []
    for video, scene, qa in _write_split(sft, name, "train", train, option_rng, shuffle_options):
        sft_rows.append(sft_row(video, qa, scene, name))
        rl_rows.append({"video": video, "qa_pairs": qa})
    shutil.copytree(sft / "clips", rl / "clips")
    _write_json(sft / f"{name}_sft.json", sft_rows)
    _write_json(rl / f"{name}_rl.json", rl_rows)
    return {"benchmark": bench / f"{name}_benchmark_qa_pairs.json", "sft": sft / f"{name}_sft.json",
            "rl": rl / f"{name}_rl.json"}
