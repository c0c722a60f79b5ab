"""`reasonkit data verify`: does every annotated clip exist, decode, and have the length its id implies?

Coverage is counted in questions (what evaluation scores), problems are listed per video. A clip whose id
fixes its frame count (BridgeV2, AgiBot) must match it within one frame: the ids leave the inclusive /
exclusive end convention open, while the upstream bugs this catches (whole BridgeV2 episodes, AgiBot frame
numbers read as seconds) are off by far more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.data.clip_ids import expected_frames
from reasonkit.errors import DataError
from reasonkit.upstream_format import annotation_path, load_samples

STATUSES = ("ok", "missing", "broken", "wrong_length")


@dataclass
class Coverage:
    dataset: str
    videos: int = 0
    questions: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    ok_questions: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.ok_questions / self.questions if self.questions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), coverage=round(self.coverage, 4))


def discover(data_dir: Path) -> list[str]:
    """Datasets with an annotation file under ``<data_dir>/benchmark``."""
    root = Path(data_dir) / "benchmark"
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if annotation_path(Path(data_dir), d.name).is_file())


def check_clip(path: Path, expected: int | None) -> tuple[str, str]:
    """(status, detail) of one clip file: every frame is decoded, so a truncated file is caught."""
    import av

    if not path.is_file():
        return "missing", f"{path} not found"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "broken", f"{path}: no video stream"
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
            fps = float(stream.average_rate or stream.guessed_rate or 0)
    except (av.error.FFmpegError, OSError) as exc:
        return "broken", f"{path}: cannot decode ({exc})"
    if frames == 0:
        return "broken", f"{path}: no decodable frames"
    duration = f"{frames / fps:.2f} s" if fps else "unknown duration"
    if expected is not None and abs(frames - expected) > 1:
        return "wrong_length", (f"{path}: {frames} frames ({duration}), the clip id implies {expected}; "
                                "rebuild it with `reasonkit data prepare`")
    return "ok", f"{frames} frames, {duration}"


def verify(data_dir: Path, datasets: list[str] | None = None,
           progress: Callable[[int], Callable[[int], None]] | None = None) -> list[Coverage]:
    data_dir = Path(data_dir)
    names = datasets or discover(data_dir)
    if not names:
        raise DataError(f"{data_dir}: no benchmark annotations found (expected "
                        "benchmark/<ds>/<ds>_benchmark_qa_pairs.json)")
    per_dataset = {name: load_samples(data_dir, name) for name in names}
    videos = {name: Counter(s.video for s in samples) for name, samples in per_dataset.items()}
    advance = progress(sum(len(v) for v in videos.values())) if progress else (lambda n: None)
    results = []
    for name, questions in videos.items():
        cov = Coverage(name, videos=len(questions), questions=sum(questions.values()))
        for video, n_questions in questions.items():
            status, detail = check_clip(video, expected_frames(name, video.stem))
            cov.counts[status] += 1
            if status == "ok":
                cov.ok_questions += n_questions
            else:
                cov.problems.append({"video": video.stem, "status": status, "detail": detail,
                                     "questions": n_questions})
            advance(1)
        results.append(cov)
    return results


def render(results: list[Coverage], console, max_problems: int = 20) -> None:
    from rich.table import Table

    table = Table("dataset", "videos", "questions", "ok", "missing", "broken", "wrong len", "coverage",
                  title="clip coverage (questions whose clip is usable)")
    for r in results:
        style = None if not r.problems else "red"
        table.add_row(r.dataset, str(r.videos), str(r.questions), *(str(r.counts[s]) for s in STATUSES),
                      f"{r.coverage:.1%} ({r.ok_questions}/{r.questions})", style=style)
    console.print(table)
    for r in results:
        for p in r.problems[:max_problems]:
            console.print(f"{r.dataset}: {p['status']}: {p['detail']}", markup=False, highlight=False,
                          soft_wrap=True)
        if len(r.problems) > max_problems:
            console.print(f"{r.dataset}: ... and {len(r.problems) - max_problems} more (see --json)")
