"""Frame thumbnails for the HTML report: the frames a record says the model saw (its ``frame_timestamps``),
decoded again with the eval's own PyAV code and frame spec, shrunk and embedded as base64 JPEGs."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

THUMB_HEIGHT = 64
THUMBS_PER_SAMPLE = 4
DEFAULT_SIZE_FACTOR = 28
THUMB_DECODE_PIXELS = 160 * 120  # records written before the family-aware spec carry size_factor None


def resolve_video(video: str | None, roots: list[Path]) -> Path | None:
    """The clip a record names: as recorded (absolute, or relative to the eval's working folder), else relative
    to each of ``roots`` (e.g. ``--media-root``)."""
    if not video:
        return None
    path = Path(video)
    candidates = [path] if path.is_absolute() else [path, *(root / path for root in roots)]
    return next((p for p in candidates if p.is_file()), None)


def thumbnails(record: dict[str, Any], video: Path, *, cache: dict | None = None) -> list[dict[str, Any]]:
    """Up to ``THUMBS_PER_SAMPLE`` evenly spaced frames of those recorded: ``[{"t": seconds, "src": data URI}]``.
    A clip that fails to decode gives no thumbnails (the report says so), never a failed report."""
    from reasonkit.errors import DataError
    from reasonkit.media import load_frames
    from reasonkit.types import FrameSpec

    spec_dict = dict(record.get("frame_spec") or {})
    if spec_dict.get("size_factor") is None:
        spec_dict["size_factor"] = DEFAULT_SIZE_FACTOR
    # The frames chosen depend on fps and the frame bounds only; resizing small is cheaper and enough here.
    spec_dict.update(min_pixels=28 * 28, max_pixels=min(spec_dict.get("max_pixels") or THUMB_DECODE_PIXELS,
                                                        THUMB_DECODE_PIXELS), total_pixels=None)
    spec = FrameSpec(**{k: v for k, v in spec_dict.items() if k in FrameSpec.__dataclass_fields__})
    key = (str(video), spec)
    if cache is not None and key in cache:
        frames = cache[key]
    else:
        try:
            frames = load_frames(video, spec)
        except DataError:
            frames = None
        if cache is not None:
            cache[key] = frames
    if frames is None:
        return []
    wanted = record.get("frame_timestamps") or frames.timestamps
    picks = _evenly(list(wanted), THUMBS_PER_SAMPLE)
    out = []
    for t in picks:
        i = min(range(len(frames.timestamps)), key=lambda j: abs(frames.timestamps[j] - t))
        out.append({"t": round(float(t), 2), "src": _jpeg_uri(frames.array[i])})
    return out


def _evenly(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def _jpeg_uri(rgb) -> str:
    from PIL import Image

    image = Image.fromarray(rgb)
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    image = image.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
