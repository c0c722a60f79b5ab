"""What a benchmark clip id says about its source (BridgeV2 / AgiBot / HoloAssist id conventions), as pure functions.

- BridgeV2 ``<folder>.<episode>.totalframe<NNN>.clipframe<MMM>``: frames 0..MMM (inclusive) of the episode's
  ``image_0`` stream, at 30 fps. ``<folder>`` is the episode's raw ``out.npy`` folder with ``/`` as ``-``.
  (Upstream cut the whole episode, and read MMM as its last three digits only.)
- AgiBot ``<task>-<episode>-<camera>-<start>-<end>-<k>``: source frames start..end-1 of
  ``observations/<task>/<episode>/videos/<camera>.mp4``; seconds = frame / the source's fps (upstream first
  used the numbers as seconds).
- HoloAssist ``<video>_coarse_<i>_fine_<j>``: the fine-grained action event with id j of ``<video>`` in the
  HoloAssist annotation JSON, from its start to its end second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reasonkit.errors import DataError

BRIDGE_FPS = 30

_BRIDGE = re.compile(r"(?P<folder>.+)\.(?P<episode>\d+)\.totalframe(?P<total>\d+)\.clipframe(?P<clip>\d+)")
_AGIBOT = re.compile(r"(?P<task>[^-]+)-(?P<episode>[^-]+)-(?P<camera>.+)"
                     r"-(?P<start>\d+)-(?P<end>\d+)-(?P<k>\d+)")
_HOLOASSIST = re.compile(r"(?P<video>.+?)_coarse_(?P<coarse>\d+)_fine_(?P<fine>\d+)")


@dataclass(frozen=True)
class BridgeClip:
    folder: str
    episode: int
    total_frames: int
    last_frame: int

    @property
    def frames(self) -> int:
        return self.last_frame + 1


@dataclass(frozen=True)
class AgibotClip:
    task: str
    episode: str
    camera: str
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def source(self) -> str:
        return f"observations/{self.task}/{self.episode}/videos/{self.camera}.mp4"


@dataclass(frozen=True)
class HoloassistClip:
    video: str
    coarse: int
    fine: int


def _match(pattern: re.Pattern, clip_id: str, dataset: str, expected: str) -> re.Match:
    m = pattern.fullmatch(clip_id)
    if m is None:
        raise DataError(f"{dataset} clip id {clip_id!r}: expected {expected}")
    return m


def parse_bridge(clip_id: str) -> BridgeClip:
    m = _match(_BRIDGE, clip_id, "bridgev2", "<folder>.<episode>.totalframe<N>.clipframe<M>")
    clip = BridgeClip(m["folder"], int(m["episode"]), int(m["total"]), int(m["clip"]))
    if clip.last_frame >= clip.total_frames:
        raise DataError(f"bridgev2 clip id {clip_id!r}: clip frame {clip.last_frame} is past the episode's "
                        f"{clip.total_frames} frames")
    return clip


def parse_agibot(clip_id: str) -> AgibotClip:
    m = _match(_AGIBOT, clip_id, "agibot", "<task>-<episode>-<camera>-<start frame>-<end frame>-<k>")
    clip = AgibotClip(m["task"], m["episode"], m["camera"], int(m["start"]), int(m["end"]))
    if clip.end <= clip.start:
        raise DataError(f"agibot clip id {clip_id!r}: end frame {clip.end} must be after start {clip.start}")
    return clip


def parse_holoassist(clip_id: str) -> HoloassistClip:
    m = _match(_HOLOASSIST, clip_id, "holoassist", "<video>_coarse_<i>_fine_<j>")
    return HoloassistClip(m["video"], int(m["coarse"]), int(m["fine"]))


def expected_frames(dataset: str, clip_id: str) -> int | None:
    """The clip's frame count when its id alone determines it (BridgeV2, AgiBot), else None."""
    try:
        if dataset == "bridgev2":
            return parse_bridge(clip_id).frames
        if dataset == "agibot":
            return parse_agibot(clip_id).frames
    except DataError:
        return None
    return None
