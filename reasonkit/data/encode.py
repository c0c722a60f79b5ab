"""Frame-exact clip cutting and encoding with PyAV (H.264, yuv420p, constant frame rate).

Upstream cut with ``ffmpeg -ss/-to -c copy``, which snaps to keyframes, so clips started and ended at the
wrong frames. Here every frame is decoded, chosen by its index (or timestamp), and re-encoded."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reasonkit.errors import DataError
from reasonkit.media.decode import open_video

_EPS = 1e-6  # seconds: float slack when comparing frame times with annotation times


class ClipWriter:
    """Write frames to ``path`` as H.264 at ``fps``; the file appears under its name only on ``close()``."""

    def __init__(self, path: Path, fps: Fraction | int, crf: int = 18):
        self.path = Path(path)
        self.fps = Fraction(fps)
        self.crf = crf
        self.part = self.path.with_name(self.path.name + ".part")
        self.count = 0
        self._container = self._stream = None

    def _open(self, width: int, height: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.part), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        # yuv420p needs even sizes; odd sources lose their last row/column of pixels to scaling.
        stream.width, stream.height = max(2, width - width % 2), max(2, height - height % 2)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "fast"}
        self._stream = stream

    def add(self, frame) -> None:
        """Append one ``av.VideoFrame`` (any pixel format) or RGB uint8 array."""
        import av

        if not isinstance(frame, av.VideoFrame):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        if self._container is None:
            self._open(frame.width, frame.height)
        frame = frame.reformat(width=self._stream.width, height=self._stream.height, format="yuv420p")
        frame.pts = self.count
        frame.time_base = 1 / self.fps
        self._container.mux(self._stream.encode(frame))
        self.count += 1

    def close(self) -> None:
        if self._container is None:
            raise DataError(f"{self.path}: no frames to write")
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        os.replace(self.part, self.path)

    def abort(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self.part.unlink(missing_ok=True)


@dataclass
class Cut:
    """One clip to cut from a source video: frames ``first..stop-1`` by index, or the frames whose time
    (seconds from the first frame) lies in ``[start_s, end_s)``."""

    out: Path
    first: int | None = None
    stop: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    error: str | None = None
    writer: ClipWriter | None = None

    def wants(self, index: int, t: float) -> bool:
        if self.first is not None:
            return self.first <= index < self.stop
        return self.start_s - _EPS <= t < self.end_s - _EPS

    def past(self, index: int, t: float) -> bool:
        return index >= self.stop if self.first is not None else t >= self.end_s - _EPS


def source_fps(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise DataError(f"{stream.container.name}: video has no frame rate")
    return Fraction(rate)


def cut_video(source: Path, cuts: list[Cut]) -> None:
    """Decode ``source`` once and write every cut; a cut the video is too short for gets ``error`` set and
    no file. Decoding stops after the last frame any cut needs."""
    import av

    container = open_video(source)
    finished = False  # any other exception aborts every writer: no partial clip under a final name
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = source_fps(stream)
        for cut in cuts:
            cut.writer = ClipWriter(cut.out, fps)
        t0, count, t = None, 0, 0.0
        for index, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else index / float(fps)
            t0 = t if t0 is None else t0
            t -= t0
            count = index + 1
            for cut in cuts:
                if cut.wants(index, t):
                    cut.writer.add(frame)
            if all(cut.past(index, t) for cut in cuts):
                break
        covered = t + 1 / float(fps)  # seconds of video decoded, the last frame's duration included
        for cut in cuts:
            if cut.first is not None and cut.writer.count != cut.stop - cut.first:
                cut.error = f"{source} has {count} frames, clip needs frames {cut.first}..{cut.stop - 1}"
            elif cut.first is None and (cut.writer.count == 0 or covered < cut.end_s - _EPS):
                cut.error = f"{source} lasts {covered:.3f} s, clip needs {cut.start_s:.3f}..{cut.end_s:.3f} s"
        finished = True
    except av.error.FFmpegError as exc:
        for cut in cuts:
            cut.error = cut.error or f"{source}: decoding failed ({exc})"
        finished = True
    finally:
        container.close()
        for cut in cuts:
            if cut.writer is None:
                continue
            if cut.error or not finished:
                cut.writer.abort()
            else:
                cut.writer.close()


def decode_images(encoded: Iterable[bytes]):
    """Decode JPEG/PNG byte strings (TFDS image features) to ``av.VideoFrame``s."""
    import av

    for data in encoded:
        codec = "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "mjpeg"
        ctx = av.CodecContext.create(codec, "r")
        try:
            frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
        except av.error.FFmpegError as exc:
            raise DataError(f"cannot decode a {codec} image ({exc})") from None
        if not frames:
            raise DataError(f"cannot decode a {codec} image (no frame)")
        yield frames[0]
