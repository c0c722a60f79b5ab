"""Frame-count and frame-size rules of qwen-vl-utils (what Qwen2.5-VL models were trained with), as pure
functions of the video's shape and a :class:`~reasonkit.types.FrameSpec`."""

from __future__ import annotations

import math

from reasonkit.errors import DataError
from reasonkit.families import DEFAULT
from reasonkit.types import FrameSpec

MAX_ASPECT_RATIO = 200


def _round(x: float, f: int) -> int:
    return round(x / f) * f


def _ceil(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor(x: float, f: int) -> int:
    return math.floor(x / f) * f


def num_frames(total_frames: int, source_fps: float, spec: FrameSpec) -> int:
    """How many frames to sample: duration·fps clamped to [min_frames, max_frames] and to what exists,
    floored to a multiple of ``spec.frame_factor``; at least one temporal patch (short clips repeat frames)."""
    f = spec.frame_factor
    min_frames = _ceil(spec.min_frames, f)
    max_frames = _floor(min(spec.max_frames, total_frames), f)
    wanted = total_frames / source_fps * spec.fps
    n = _floor(min(max(wanted, min_frames), max_frames, total_frames), f)
    return max(n, f)


def frame_indices(total_frames: int, n: int) -> list[int]:
    """``n`` evenly spaced indices over ``[0, total_frames-1]`` (linspace then round, as upstream)."""
    if n == 1:
        return [0]
    step = (total_frames - 1) / (n - 1)
    return [int(math.floor(i * step + 0.5)) if total_frames > 1 else 0 for i in range(n)]


def frame_size(height: int, width: int, n_frames: int, spec: FrameSpec) -> tuple[int, int]:
    """Target (height, width): aspect kept, multiples of ``size_factor``, pixel count within the spec's bounds
    (the per-frame maximum is lowered so the whole clip fits ``total_pixels`` when set)."""
    f = spec.size_factor or DEFAULT.size_factor
    if min(height, width) <= 0 or max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise DataError(f"video frame {width}x{height}: aspect ratio must be under {MAX_ASPECT_RATIO}")
    max_pixels = spec.max_pixels
    if spec.total_pixels:
        per_frame = spec.total_pixels / n_frames * spec.frame_factor
        max_pixels = min(max_pixels, max(per_frame, int(spec.min_pixels * 1.05)))
    h = max(f, _round(height, f))
    w = max(f, _round(width, f))
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = max(f, _floor(height / beta, f)), max(f, _floor(width / beta, f))
    elif h * w < spec.min_pixels:
        beta = math.sqrt(spec.min_pixels / (height * width))
        h, w = _ceil(height * beta, f), _ceil(width * beta, f)
    return h, w
