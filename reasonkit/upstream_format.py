"""The Cosmos-Reason1 on-disk benchmark format (below), read strictly.

    <data_dir>/benchmark/<ds>/<ds>_benchmark_qa_pairs.json
    <data_dir>/benchmark/<ds>/clips/<video_id>.mp4

The annotation is a JSON list of ``{"video": "clips/<id>.mp4", "qa_pairs": Q}`` where Q is one dict or a list of
``{"question", "index2ans": {"A": ..., ...}, "answer" | "correct_answer"}``. Every question becomes a Sample with
id ``<video_id>#<question index>`` (RoboVQA has several questions per video).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasonkit.errors import DataError
from reasonkit.textfile import read_json
from reasonkit.types import Sample


def benchmark_dir(data_dir: Path, dataset: str) -> Path:
    return Path(data_dir) / "benchmark" / dataset


def annotation_path(data_dir: Path, dataset: str) -> Path:
    return benchmark_dir(data_dir, dataset) / f"{dataset}_benchmark_qa_pairs.json"


def safe_join(root: Path, relative: str, *, what: str) -> Path:
    """``root / relative``, refusing absolute paths and anything that resolves outside ``root``."""
    if not isinstance(relative, str) or not relative:
        raise DataError(f"{what}: expected a relative path string, got {relative!r}")
    candidate = Path(relative)
    resolved_root = root.resolve()
    resolved = (root / candidate).resolve()
    if candidate.is_absolute() or (resolved != resolved_root and resolved_root not in resolved.parents):
        link = first_symlink(root, candidate)
        if link is not None:  # the path itself looks harmless: say which link leads out, and where
            raise DataError(f"{what}: path {relative!r} is refused: {link} is a symlink to {link.resolve()}, "
                            f"outside the data directory {root}")
        raise DataError(f"{what}: path {relative!r} escapes the data directory {root}")
    return root / candidate


def first_symlink(root: Path, relative: Path) -> Path | None:
    """The first of ``root/a``, ``root/a/b``, ... (the components of ``relative``) that is a symlink."""
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def read_annotation(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    return read_json(path, list, "a JSON list of {'video', 'qa_pairs'} entries")


def qa_list(entry: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The entry's ``qa_pairs`` as a list (upstream allows one dict or a list of dicts)."""
    qa = entry.get("qa_pairs")
    if isinstance(qa, dict):
        return [qa]
    if isinstance(qa, list) and qa and all(isinstance(q, dict) for q in qa):
        return qa
    raise DataError(f"{where}: 'qa_pairs' must be a dict or a non-empty list of dicts")


def parse_question(qa: dict[str, Any], where: str) -> tuple[str, dict[str, str], str]:
    """(question, options, answer letter) of one upstream qa pair, checked: the answer (``answer`` or
    ``correct_answer``) must be one of the option letters. Benchmarks and GRPO's RL rows both read through here."""
    question = qa.get("question")
    choices = qa.get("index2ans")
    answer = qa.get("answer", qa.get("correct_answer"))
    if not isinstance(question, str):
        raise DataError(f"{where}: missing 'question' string")
    if not isinstance(choices, dict) or not choices:
        raise DataError(f"{where}: 'index2ans' must map option letters to answers")
    if not isinstance(answer, str) or answer.strip().upper() not in {str(k).upper() for k in choices}:
        raise DataError(f"{where}: 'answer' (or 'correct_answer') must be one of {sorted(map(str, choices))}")
    return question, {str(k): str(v) for k, v in choices.items()}, answer.strip().upper()


def load_samples(data_dir: Path, dataset: str) -> list[Sample]:
    """All questions of an upstream-format benchmark, in file order; clips are not opened here."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    root = benchmark_dir(data_dir, dataset)
    path = annotation_path(data_dir, dataset)
    samples: list[Sample] = []
    for i, entry in enumerate(read_annotation(path)):
        where = f"{path} entry {i}"
        if not isinstance(entry, dict) or "video" not in entry:
            raise DataError(f"{where}: expected an object with a 'video' key")
        video = safe_join(root, entry["video"], what=f"{where} key 'video'")
        video_id = Path(entry["video"]).stem
        for q_index, qa in enumerate(qa_list(entry, where)):
            question, choices, answer = parse_question(qa, f"{where} question {q_index}")
            samples.append(Sample(
                id=f"{video_id}#{q_index}",
                dataset=dataset,
                video=video,
                question=question,
                choices=choices,
                answer=answer,
                metadata={"video_id": video_id, "question_index": q_index,
                          **{k: v for k, v in qa.items() if k not in ("question", "index2ans", "answer",
                                                                      "correct_answer")}},
            ))
    return samples
