"""What `reasonkit score` and the HTML report add to the accuracy table: the scorer reported (``--scorer``),
accuracy per question type where the benchmark defines types (``meta.task``, e.g. synthphys' count or
direction; upstream benchmarks have one type per dataset, so their dataset rows are the breakdown), and the frame
budget actually sampled (frames and pixels per clip, from the records' ``frame_shape``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from reasonkit.errors import ReasonkitError


class Rescored:
    """A result store read through another scorer: each record's ``correct``/``extracted`` are the ones that
    scorer recorded in ``scores`` (``reasonkit eval`` runs every configured scorer on every answer)."""

    def __init__(self, store, scorer: str):
        self.store, self.scorer, self.path = store, scorer, store.path

    def manifest(self) -> dict[str, Any] | None:
        return self.store.manifest()

    def records(self) -> list[dict[str, Any]]:
        out = []
        for r in self.store.records():
            judged = (r.get("scores") or {}).get(self.scorer)
            if judged is None and r.get("status") == "ok":
                recorded = ", ".join(sorted(r.get("scores") or {})) or "none"
                raise ReasonkitError(f"{self.path}: scorer {self.scorer!r} was not run on these results (recorded: "
                                     f"{recorded}); add it to evaluation.scorers and rerun with --no-resume")
            judged = judged or {"extracted": None, "correct": False}  # error records: wrong under any scorer
            out.append({**r, "extracted": judged["extracted"], "correct": judged["correct"]})
        return out


def with_scorer(stores: list, scorer: str | None) -> list:
    return stores if scorer is None else [Rescored(s, scorer) for s in stores]


def run_key(store) -> tuple[str, str, str] | None:
    """(model slug, answer type, dataset), the key `reasonkit score` groups rows by."""
    manifest = store.manifest()
    if manifest is None:
        return None
    return store.path.parents[2].name, manifest["answer_type"], manifest["benchmark"]


def frame_budget(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Frames per clip and pixels per frame actually sampled (min–max over the clips), and the spec's bounds."""
    shapes = [r["frame_shape"] for r in records if r.get("frame_shape")]
    if not shapes:
        return None
    frames = [s[0] for s in shapes]
    pixels = [s[1] * s[2] for s in shapes]
    spec = next((r["frame_spec"] for r in records if r.get("frame_spec")), {}) or {}
    sizes = sorted({(s[1], s[2]) for s in shapes}, key=lambda hw: hw[0] * hw[1])
    return {"frames_min": min(frames), "frames_max": max(frames), "pixels_min": min(pixels),
            "pixels_max": max(pixels), "size_min": list(sizes[0]), "size_max": list(sizes[-1]),
            "fps": spec.get("fps"), "spec_max_pixels": spec.get("max_pixels"),
            "spec_max_frames": spec.get("max_frames")}


def format_budget(budget: dict[str, Any] | None) -> str:
    """'4 fr · 112×112 px' or '4–16 fr · 56×84–112×112 px'."""
    if not budget:
        return "-"

    def span(lo, hi):
        return str(lo) if lo == hi else f"{lo}–{hi}"

    lo, hi = ("×".join(map(str, budget["size_min"])), "×".join(map(str, budget["size_max"])))
    return f"{span(budget['frames_min'], budget['frames_max'])} fr · {span(lo, hi)} px"


def type_accuracy(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per question type (``meta.task``): questions, correct, accuracy % and its video-clustered bootstrap CI.
    Empty when no record has a type. Error records count as wrong, as in the dataset rows."""
    from reasonkit.scoring.stats import bootstrap_ci, dedup

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dedup(records):
        task = (r.get("meta") or {}).get("task")
        if task is not None:
            groups[str(task)].append(r)
    out = {}
    for task, group in sorted(groups.items()):
        correct = sum(bool(r.get("correct")) for r in group)
        lo, hi = bootstrap_ci(group)
        out[task] = {"n": len(group), "correct": correct, "accuracy": 100 * correct / len(group),
                     "ci95_low": 100 * lo, "ci95_high": 100 * hi}
    return out


def annotate(rows: list[dict[str, Any]], stores: list, scorer: str | None) -> list[dict[str, Any]]:
    """Add ``scorer``, ``frame_budget`` and ``by_type`` (first seed, like the CI) to `summarize`'s dataset rows."""
    first: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for store in sorted(stores, key=lambda s: (s.manifest() or {}).get("seed", 0)):
        key = run_key(store)
        if key is not None and key not in first:
            first[key] = store.records()
    primary = next(((s.manifest() or {}).get("primary_scorer") for s in stores), None)
    for row in rows:
        records = first.get((row["model"], row["answer_type"], row["dataset"]))
        row["scorer"] = scorer or primary or "primary"
        if records is not None:
            row["frame_budget"] = frame_budget(records)
            row["by_type"] = type_accuracy(records)
    return rows


def print_type_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    typed = [r for r in rows if r.get("by_type")]
    if not typed:
        return
    table = Table("model", "answer", "dataset", "type", "accuracy %", "95% CI (by video)", "questions",
                  title="accuracy per question type")
    for row in typed:
        for task, t in row["by_type"].items():
            table.add_row(row["model"], row["answer_type"], row["dataset"], task, f"{t['accuracy']:.1f}",
                          f"[{t['ci95_low']:.1f}, {t['ci95_high']:.1f}]", f"{t['correct']}/{t['n']}")
    Console().print(table)


def eval_metrics(stores, prefix: str = "eval") -> dict[str, float]:
    """Flat metrics of `reasonkit score`'s rows: ``<prefix>/<benchmark>/accuracy`` (%), ``.../coverage`` (%),
    ``.../<question type>`` (%), and ``<prefix>/macro_accuracy`` over several benchmarks."""
    from reasonkit.scoring.report import summarize

    out: dict[str, float] = {}
    for row in annotate(summarize(stores), stores, None):
        if row["dataset"] == "macro avg":
            out[f"{prefix}/macro_accuracy"] = row["accuracy"]
        elif not row["dataset"].endswith(" avg"):
            base = f"{prefix}/{row['dataset']}"
            out[f"{base}/accuracy"], out[f"{base}/coverage"] = row["accuracy"], row["coverage"]
            for task, t in (row.get("by_type") or {}).items():
                out[f"{base}/{task}"] = t["accuracy"]
    return out
