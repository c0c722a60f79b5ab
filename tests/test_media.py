"""Frame sampling rules (qwen-vl-utils semantics) and real PyAV decoding."""

from __future__ import annotations

import pytest
from helpers import write_clip

from reasonkit.errors import DataError
from reasonkit.media import frame_indices, frame_size, load_frames, num_frames
from reasonkit.types import FrameSpec

UPSTREAM = FrameSpec()  # 4 fps, 4..768 frames, 128..768 x 28^2 px


def test_frame_count_rules():
    assert num_frames(300, 30.0, UPSTREAM) == 40          # 10 s at 4 fps
    assert num_frames(45, 30.0, UPSTREAM) == 6            # 1.5 s -> 6
    assert num_frames(31, 30.0, UPSTREAM) == 4            # short clip: min_frames
    assert num_frames(3, 30.0, UPSTREAM) == 2             # fewer frames than min: floor to even, >= 2
    assert num_frames(30 * 600, 30.0, UPSTREAM) == 768    # 10 min: max_frames
    assert num_frames(47, 30.0, FrameSpec(fps=1.0)) == 4  # min_frames wins over 1.57


def test_indices_are_linspace_rounded():
    assert frame_indices(300, 4) == [0, 100, 199, 299]
    assert frame_indices(10, 2) == [0, 9]
    assert frame_indices(1, 2) == [0, 0]


def test_frame_size_rules():
    # 1280x720 is too big for 768*28^2: scaled down keeping aspect, multiples of 28
    h, w = frame_size(720, 1280, 40, UPSTREAM)
    assert (h, w) == (560, 1008) and h * w <= 768 * 28 * 28
    # tiny frames are scaled up to min_pixels
    h, w = frame_size(64, 96, 8, UPSTREAM)
    assert h % 28 == 0 and w % 28 == 0 and h * w >= 128 * 28 * 28
    # a total pixel budget lowers the per-frame maximum
    h2, w2 = frame_size(720, 1280, 40, FrameSpec(total_pixels=40 * 200 * 28 * 28))
    assert h2 * w2 < h * w * 100 and h2 * w2 <= 2 * 200 * 28 * 28
    with pytest.raises(DataError, match="aspect ratio"):
        frame_size(1, 500, 4, UPSTREAM)


def test_load_frames_decodes_real_clip(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=24, size=(64, 96), fps=8)  # 3 s
    spec = FrameSpec(fps=4.0, min_frames=2, max_frames=16, min_pixels=28 * 28, max_pixels=56 * 84)
    frames = load_frames(clip, spec)
    assert frames.array.shape == (12, 56, 84, 3) and frames.array.dtype.name == "uint8"
    assert frames.source_frames == 24 and frames.source_fps == 8.0 and frames.duration == 3.0
    assert frames.indices == frame_indices(24, 12)
    assert frames.timestamps == [round(i / 8, 4) for i in frames.indices]
    assert frames.fps == pytest.approx(4.0)
    # the bright bar written at column 4*i moves right over time: frame order is preserved
    cols = [int(f.mean(axis=(0, 2)).argmax()) for f in frames.array]
    assert cols == sorted(cols)
    meta = frames.metadata()
    assert meta["frames_indices"] == frames.indices and meta["total_num_frames"] == 24


def test_missing_and_corrupt_clips_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match="video file not found"):
        load_frames(tmp_path / "none.mp4", UPSTREAM)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match="bad.mp4: cannot"):
        load_frames(bad, UPSTREAM)
