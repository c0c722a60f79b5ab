"""Read upstream-format training rows. Video paths are relative to the file naming them and may not escape it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasonkit.errors import DataError
from reasonkit.textfile import read_text
from reasonkit.upstream_format import qa_list, safe_join


def resolve_source(source: str | None, subset: str | None) -> Path:
    """A local file/folder, or an HF dataset id fetched (subset only) into the hub cache."""
    if not source:
        raise DataError("dataset.path is required: a JSON/JSONL file, a folder of them, or an HF dataset id")
    path = Path(source).expanduser()
    if path.exists():
        return path / subset if subset and (path / subset).is_dir() else path
    if source.count("/") != 1:
        raise DataError(f"dataset path {source}: no such file or folder (and not an HF dataset id)")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(source, repo_type="dataset", allow_patterns=[f"{subset}/**"] if subset else None)
    except Exception as exc:  # offline, unknown repo, no access: one line
        raise DataError(f"cannot fetch HF dataset {source}: {' '.join(str(exc).split())[:200]}") from None
    return Path(local) / subset if subset else Path(local)


def _files(path: Path, split: str | None) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
    if split:
        files = [p for p in files if split in p.stem]
    if not files:
        raise DataError(f"{path}: no .json/.jsonl files{f' for split {split!r}' if split else ''}")
    return files


def _read(file: Path) -> list[Any]:
    text = read_text(file)
    try:
        if file.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{file}: expected a JSON list of rows")
    return data


def _video(file: Path, row: dict[str, Any], where: str) -> Path | None:
    video = row.get("video")
    return None if video in (None, "") else safe_join(file.parent, video, what=f"{where} key 'video'")


def sft_rows(source: str | None, *, subset: str | None = None, split: str | None = None,
             column: str = "conversations", **_: Any) -> list[dict[str, Any]]:
    rows = []
    for file in _files(resolve_source(source, subset), split):
        for i, row in enumerate(_read(file)):
            where = f"{file} row {i}"
            turns = row.get(column) if isinstance(row, dict) else None
            if not isinstance(turns, list) or not turns or not all(
                    isinstance(t, dict) and "role" in t and "content" in t for t in turns):
                raise DataError(f"{where}: '{column}' must be a list of {{'role', 'content'}} turns")
            if not any(t["role"] == "assistant" for t in turns):
                raise DataError(f"{where}: no assistant turn to train on")
            rows.append({"id": f"{file.stem}#{i}", "video": _video(file, row, where), "conversations": turns})
    return rows


def rl_rows(source: str | None, *, subset: str | None = None, split: str | None = None,
            column: str = "qa_pairs", **_: Any) -> list[dict[str, Any]]:
    rows = []
    for file in _files(resolve_source(source, subset), split):
        for i, row in enumerate(_read(file)):
            where = f"{file} row {i}"
            for j, qa in enumerate(qa_list({"qa_pairs": row.get(column)}, where)):
                if not isinstance(qa.get("index2ans"), dict) or ("answer" not in qa and "correct_answer" not in qa):
                    raise DataError(f"{where}: each qa needs 'question', 'index2ans' and 'answer'")
                rows.append({"id": f"{file.stem}#{i}.{j}", "video": _video(file, row, where), "qa": qa})
    return rows


def synthphys_rows(source: str | None, *, split: str | None = "sft", **options: Any) -> list[dict[str, Any]]:
    """``source`` is the data dir of ``reasonkit synth benchmark``; split ``sft`` or ``rl``."""
    kind = split or "sft"
    if kind not in ("sft", "rl"):
        raise DataError(f"synthphys dataset split must be 'sft' or 'rl', got {split!r}")
    file = Path(source or "") / kind / "synthphys" / f"synthphys_{kind}.json"
    if not file.is_file():
        raise DataError(f"{file}: not found (build it with `reasonkit synth benchmark --out {source}`)")
    return sft_rows(str(file)) if kind == "sft" else rl_rows(str(file))


def _synthphys_frames():
    from reasonkit.synth.benchmark import FRAME_SPEC

    return FRAME_SPEC


# Trained on the frames it is evaluated on: the spec the synthphys benchmark declares (a recipe's [frames] wins).
synthphys_rows.frame_spec = _synthphys_frames()
