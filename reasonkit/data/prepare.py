"""`reasonkit data prepare`: rebuild AgiBot / BridgeV2 / HoloAssist benchmark clips from the raw datasets.

Raw layouts (those upstream's process_raw_data.py downloads; ``RAW`` or ``RAW/<dataset>``):
- bridgev2: the TFDS ``bridge_dataset`` (``RAW/bridge_dataset/1.0.0/bridge_dataset-val.tfrecord-*``; any
  ``*.tfrecord*`` below RAW is scanned, val shards first), read without TensorFlow.
- agibot: AgiBotWorld-Beta extracted, ``RAW/observations/<task>/<episode>/videos/<camera>.mp4``.
- holoassist: ``RAW/data-annotation-trainval-v1_1.json`` and ``RAW/videos/<video>/Export_py/*.mp4``.
Clip ids say which frames to cut (reasonkit.data.clip_ids). A clip whose raw input is missing is recorded,
not fatal: the others are still built, and the list is printed and written to ``missing_clips.txt``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reasonkit.data import clip_ids
from reasonkit.data.encode import ClipWriter, Cut, cut_video, decode_images
from reasonkit.errors import DataError
from reasonkit.textfile import read_json
from reasonkit.upstream_format import annotation_path, read_annotation, safe_join

DATASETS = ("bridgev2", "agibot", "holoassist")
MISSING_FILE = "missing_clips.txt"
HOLOASSIST_ANNOTATION = "data-annotation-trainval-v1_1.json"

Advance = Callable[[int], None]


@dataclass
class PrepareReport:
    dataset: str
    total: int = 0
    written: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # clip id -> why
    missing_file: Path | None = None


def clip_targets(annotation: Path) -> dict[str, Path]:
    """clip id -> output path, for every distinct video of an upstream-format annotation file."""
    targets: dict[str, Path] = {}
    for i, entry in enumerate(read_annotation(annotation)):
        if not isinstance(entry, dict) or not isinstance(entry.get("video"), str):
            raise DataError(f"{annotation} entry {i}: expected an object with a 'video' path")
        out = safe_join(annotation.parent, entry["video"], what=f"{annotation} entry {i} key 'video'")
        targets.setdefault(Path(entry["video"]).stem, out)
    return targets


def raw_root(raw_dir: Path, dataset: str) -> Path:
    """Accept both ``--raw-dir data/raw`` and ``--raw-dir data/raw/<dataset>`` (upstream's location)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"--raw-dir {raw_dir}: folder not found")
    return raw_dir / dataset if (raw_dir / dataset).is_dir() else raw_dir


def prepare(dataset: str, raw_dir: Path, data_dir: Path | None, annotation: Path | None = None,
            overwrite: bool = False, progress: Callable[[int], Advance] | None = None) -> PrepareReport:
    """Build every missing clip of ``dataset``; ``progress(total)`` returns a callback advanced per clip."""
    if dataset not in DATASETS:
        raise DataError(f"dataset {dataset!r}: clips can be rebuilt for {', '.join(DATASETS)}")
    if annotation is None and data_dir is None:
        raise DataError("prepare: give --data-dir (benchmark layout) or --annotation (any annotation file)")
    annotation = Path(annotation) if annotation else annotation_path(Path(data_dir), dataset)
    targets = clip_targets(annotation)
    report = PrepareReport(dataset, total=len(targets))
    todo = {}
    for clip_id, out in targets.items():
        if out.is_file() and out.stat().st_size > 0 and not overwrite:
            report.present.append(clip_id)
        else:
            todo[clip_id] = out
    advance = progress(len(todo)) if progress else (lambda n: None)
    root = raw_root(raw_dir, dataset)
    builder = {"bridgev2": _bridge, "agibot": _agibot, "holoassist": _holoassist}[dataset]
    builder(root, todo, report, advance)
    missing_file = annotation.parent / MISSING_FILE
    if report.missing:
        missing_file.write_text("".join(f"{k}\t{v}\n" for k, v in sorted(report.missing.items())))
        report.missing_file = missing_file
    else:
        missing_file.unlink(missing_ok=True)
    return report


def _run_cuts(groups: dict[Path, list[tuple[str, Cut]]], report: PrepareReport, advance: Advance) -> None:
    for source, items in groups.items():
        cut_video(source, [cut for _, cut in items])
        for clip_id, cut in items:
            if cut.error:
                report.missing[clip_id] = cut.error
            else:
                report.written.append(clip_id)
        advance(len(items))


def _agibot(root: Path, todo: dict[str, Path], report: PrepareReport, advance: Advance) -> None:
    groups: dict[Path, list[tuple[str, Cut]]] = defaultdict(list)
    for clip_id, out in todo.items():
        try:
            clip = clip_ids.parse_agibot(clip_id)
        except DataError as exc:
            report.missing[clip_id] = str(exc)
            advance(1)
            continue
        source = root / clip.source
        if not source.is_file():
            report.missing[clip_id] = f"raw video not found: {source}"
            advance(1)
            continue
        groups[source].append((clip_id, Cut(out, first=clip.start, stop=clip.end)))
    _run_cuts(groups, report, advance)


def _holoassist_events(root: Path) -> dict[str, dict[int, tuple[float, float]]] | None:
    """video name -> {fine-grained action id: (start s, end s)}, or None when the annotation is absent."""
    path = root / HOLOASSIST_ANNOTATION
    if not path.is_file():
        candidates = sorted(root.glob("data-annotation*.json"))
        if not candidates:
            return None
        path = candidates[0]
    videos = read_json(path, list, "a list of {'video_name', 'events'} objects")
    events: dict[str, dict[int, tuple[float, float]]] = {}
    for i, video in enumerate(videos):
        try:
            events[video["video_name"]] = {
                int(e["id"]): (float(e["start"]), float(e["end"]))
                for e in video.get("events", []) if e.get("label") == "Fine grained action"}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{path} entry {i}: expected 'video_name' and events with id/label/start/end"
                            ) from None
    return events


def _holoassist_video(root: Path, video: str) -> Path | None:
    folder = root / "videos" / video / "Export_py"
    preferred = folder / "Video_pitchshift.mp4"
    if preferred.is_file():
        return preferred
    found = sorted(folder.glob("*.mp4"))
    return found[0] if found else None


def _holoassist_cut(root: Path, clip_id: str, out: Path, events) -> tuple[Path, Cut] | str:
    """(source video, cut) for one clip, or why it cannot be built."""
    try:
        clip = clip_ids.parse_holoassist(clip_id)
    except DataError as exc:
        return str(exc)
    if events is None:
        return f"HoloAssist annotation not found: {root / HOLOASSIST_ANNOTATION}"
    if clip.fine not in events.get(clip.video, {}):
        return f"no fine-grained action {clip.fine} for video {clip.video!r} in the HoloAssist annotation"
    source = _holoassist_video(root, clip.video)
    if source is None:
        return f"raw video not found: {root / 'videos' / clip.video / 'Export_py'}/*.mp4"
    start, end = events[clip.video][clip.fine]
    if end <= start:
        return f"fine-grained action {clip.fine} of {clip.video!r} ends ({end}) before it starts ({start})"
    return source, Cut(out, start_s=start, end_s=end)


def _holoassist(root: Path, todo: dict[str, Path], report: PrepareReport, advance: Advance) -> None:
    events = _holoassist_events(root) if todo else {}
    groups: dict[Path, list[tuple[str, Cut]]] = defaultdict(list)
    for clip_id, out in todo.items():
        planned = _holoassist_cut(root, clip_id, out, events)
        if isinstance(planned, str):
            report.missing[clip_id] = planned
            advance(1)
        else:
            groups[planned[0]].append((clip_id, planned[1]))
    _run_cuts(groups, report, advance)


def _bridge_key(file_path: str) -> list[str]:
    """Candidate clip-id folders for a TFDS ``episode_metadata/file_path`` (…/<a>/<b>/train/out.npy): every
    ``-``-joined suffix of its folder, since the clip id drops an unknown absolute prefix."""
    parts = file_path.removesuffix("/out.npy").strip("/").split("/")
    return ["-".join(parts[i:]) for i in range(len(parts))]


def _bridge(root: Path, todo: dict[str, Path], report: PrepareReport, advance: Advance) -> None:
    from reasonkit.data.tfrecord import bytes_list, int64_list, parse_example, read_records

    # folder -> episode -> clips
    wanted: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for clip_id in todo:
        try:
            clip = clip_ids.parse_bridge(clip_id)
        except DataError as exc:
            report.missing[clip_id] = str(exc)
            advance(1)
            continue
        wanted[clip.folder][clip.episode].append((clip_id, clip))
    # The benchmark comes from the val split: scan its shards first and stop once every clip is found.
    shards = sorted((p for p in root.rglob("*.tfrecord*") if p.is_file()),
                    key=lambda p: ("-val." not in p.name, str(p)))
    for shard in shards:
        if not wanted:
            break
        for record in read_records(shard):
            ex = parse_example(record)
            if "episode_metadata/file_path" not in ex or "episode_metadata/episode_id" not in ex:
                raise DataError(f"{shard}: not a bridge_dataset shard (no episode_metadata/file_path)")
            file_path = bytes_list(ex["episode_metadata/file_path"])[0].decode()
            episode = int64_list(ex["episode_metadata/episode_id"])[0]
            folder = next((k for k in _bridge_key(file_path) if k in wanted), None)
            if folder is None or episode not in wanted[folder]:
                continue
            images = bytes_list(ex.get("steps/observation/image_0", memoryview(b"")))
            for clip_id, clip in wanted[folder].pop(episode):
                if clip.last_frame >= len(images):
                    report.missing[clip_id] = (f"{shard}: episode {file_path}#{episode} has {len(images)} "
                                               f"image_0 frames, clip needs frames 0..{clip.last_frame}")
                else:
                    try:
                        _write_frames(todo[clip_id], decode_images(images[:clip.frames]))
                        report.written.append(clip_id)
                    except DataError as exc:
                        report.missing[clip_id] = f"{shard}: episode {file_path}#{episode}: {exc}"
                advance(1)
            if not wanted[folder]:
                del wanted[folder]
            if not wanted:
                break
    for episodes in wanted.values():
        for items in episodes.values():
            for clip_id, clip in items:
                report.missing[clip_id] = (f"episode {clip.folder}#{clip.episode} not found in "
                                           f"{len(shards)} TFRecord shards under {root}")
                advance(1)


def _write_frames(out: Path, frames) -> None:
    writer = ClipWriter(out, clip_ids.BRIDGE_FPS)
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    writer.close()
