"""Benchmarks stored in the upstream Cosmos-Reason1 layout (see reasonkit.upstream_format)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasonkit.types import FrameSpec, Sample
from reasonkit.upstream_format import load_samples


@dataclass
class UpstreamBenchmark:
    name: str
    frame_spec: FrameSpec = field(default_factory=FrameSpec)  # upstream eval: 4 fps, 128..768 × 28² px

    def load(self, data_dir: Path) -> list[Sample]:
        return load_samples(Path(data_dir), self.name)


def av() -> UpstreamBenchmark:
    return UpstreamBenchmark("av")


def robovqa() -> UpstreamBenchmark:
    return UpstreamBenchmark("robovqa")


def agibot() -> UpstreamBenchmark:
    return UpstreamBenchmark("agibot")


def bridgev2() -> UpstreamBenchmark:
    return UpstreamBenchmark("bridgev2")


def holoassist() -> UpstreamBenchmark:
    return UpstreamBenchmark("holoassist")


def robofail() -> UpstreamBenchmark:
    return UpstreamBenchmark("robofail")


def synthphys() -> UpstreamBenchmark:
    # Small clips for the tiny model (4 frames of 112x112 at 2 fps); the spec lives beside the generator so the
    # two cannot drift apart.
    from reasonkit.synth.benchmark import FRAME_SPEC

    return UpstreamBenchmark("synthphys", FRAME_SPEC)
