"""Plain data types shared by every layer (no heavy imports)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class FrameSpec:
    """How frames are sampled from a video and sized for the model (qwen-vl-utils semantics).

    Frame count = duration·fps clamped to [min_frames, max_frames], rounded to a multiple of ``frame_factor``
    (2: Qwen2.5-VL's temporal patch). Each frame is resized keeping its aspect ratio to a multiple of
    ``size_factor`` px with ``min_pixels <= h·w <= max_pixels``; ``total_pixels`` (if set) caps the whole
    clip's pixel budget by lowering the per-frame maximum. ``size_factor`` None means "the model's" (28 for
    Qwen2.5-VL, 32 for Qwen3-VL: :func:`reasonkit.families.frame_spec_for` fills it in before decoding).
    """

    fps: float = 4.0
    min_frames: int = 4
    max_frames: int = 768
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    total_pixels: int | None = None
    size_factor: int | None = None
    frame_factor: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    """One benchmark question (or one training prompt).

    ``id`` is unique within a benchmark: ``<video>#<question index>`` for the upstream format, so several
    questions on one video are distinct records.
    """

    id: str
    dataset: str
    video: Path | None
    question: str
    choices: dict[str, str] = field(default_factory=dict)  # letter -> option text
    answer: str | None = None  # reference letter
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def video_id(self) -> str:
        return self.metadata.get("video_id", self.video.stem if self.video else self.id)


@dataclass
class Frames:
    """Decoded, resized frames of one clip and how they were chosen."""

    array: Any  # numpy uint8 (T, H, W, 3)
    fps: float  # the sampled frame rate the model is told (temporal positions depend on it)
    timestamps: list[float]  # seconds of each frame in the source video
    source_fps: float
    source_frames: int
    duration: float
    indices: list[int] = field(default_factory=list)  # source frame index of each sampled frame

    def metadata(self) -> dict[str, Any]:
        """The video metadata transformers and vLLM processors take with pre-sampled frames. Qwen2.5-VL derives
        the sampled fps (len(indices) / total · fps) for its temporal position ids; Qwen3-VL writes each temporal
        patch's time (index / fps) into the prompt. Where index / fps is not the frame's decoded timestamp, the
        indices are given as ``timestamp · fps`` so the prompt says the true time."""
        indices: list[float] = list(self.indices)
        at_times = [t * self.source_fps for t in self.timestamps]
        if len(at_times) == len(indices) and any(abs(a - i) > 0.05 for a, i in zip(at_times, indices)):
            indices = at_times  # e.g. a first frame at 0.5 s: index / fps alone would say 0 s
        return {"total_num_frames": self.source_frames, "fps": self.source_fps, "duration": self.duration,
                "frames_indices": indices, "width": int(self.array.shape[2]), "height": int(self.array.shape[1])}


@dataclass(kw_only=True)
class Sampling:
    """How completions are sampled: the one sampling vocabulary, whatever asks for completions. Eval's
    ``generation:`` block and GRPO's ``[rollout]`` (with ``train_policy.temperature``) each become one of these;
    the defaults here are greedy, and each config section declares its own."""

    max_tokens: int = 1024
    temperature: float = 0.0  # 0: greedy (top_p and top_k then do not apply)
    top_p: float = 1.0
    top_k: int = -1  # -1: no top-k cut
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


@dataclass
class GenRequest(Sampling):
    """One prompt for a backend: chat messages plus decoded frames (None for text-only), sampled ``n`` times with
    its :class:`Sampling` settings (keyword-only)."""

    messages: list[dict[str, Any]]
    frames: Frames | None = None
    n: int = 1

    @classmethod
    def of(cls, messages: list[dict[str, Any]], frames: Frames | None, sampling: Sampling, *,
           n: int = 1) -> GenRequest:
        """The request for a prompt under a config's sampling settings: how eval and GRPO both make theirs."""
        settings = {f.name: getattr(sampling, f.name) for f in fields(Sampling)}
        return cls(messages=messages, frames=frames, n=n, **settings)


@dataclass
class GenResult:
    texts: list[str]  # n completions
    token_ids: list[list[int]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int | None = None  # as the server counted them (API backends return no token ids)
    error: str | None = None  # the request finally failed (API backends): the runner writes an error record


@dataclass
class Judgement:
    """A scorer's verdict on one output."""

    extracted: str | None  # the answer letter found, None if unparseable
    correct: bool


class Benchmark(Protocol):
    name: str
    frame_spec: FrameSpec

    def load(self, data_dir: Path) -> list[Sample]: ...


class Scorer(Protocol):
    name: str

    def score(self, output: str, sample: Sample, answer_type: str) -> Judgement: ...


class Backend(Protocol):
    def generate(self, requests: list[GenRequest]) -> list[GenResult]: ...

    def close(self) -> None: ...


class Uploader(Protocol):
    def upload(self, folder: Path, dest: str) -> str: ...
