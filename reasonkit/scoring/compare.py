"""`reasonkit compare A B`: is B really better than A, on which datasets, on which questions?

A side is a results folder (every model recorded in it), a training run folder (its evals), a model slug or model
name recorded in ``--results-dir``, or a model folder (an export: its results are found by the weights'
fingerprint). The statistics live in :mod:`reasonkit.scoring.paired`; this module finds the records, pairs the
sides and prints."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.evaluate.store import find_stores
from reasonkit.scoring import paired as stats

RunKey = tuple[str, str]  # (dataset, answer_type)


@dataclass
class Side:
    """One model's records: (dataset, answer_type) → seed → records."""

    label: str
    model: str = ""
    fingerprint: str | None = None
    runs: dict[RunKey, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)


def load_sides(root: Path) -> list[Side]:
    """Every model recorded under ``root``, labelled by its folder relative to ``root`` (the model slug in a
    results folder; ``eval/results/<slug>`` in a training run), in the order they were first evaluated (so the
    first, the default baseline, is the model before fine-tuning, or a run's earliest step)."""
    sides: dict[str, Side] = {}
    started: dict[str, str] = {}
    for store in find_stores(root):
        manifest = store.manifest()
        if manifest is None:
            continue
        model_dir = store.path.parents[2]  # <model>/<benchmark>/<answer_type>/seed<k>.jsonl
        inside = model_dir != root and model_dir.is_relative_to(root)
        label = str(model_dir.relative_to(root)) if inside else model_dir.name
        side = sides.setdefault(label, Side(label=label, model=str(manifest.get("model", "")),
                                            fingerprint=manifest.get("model_fingerprint")))
        started[label] = min(started.get(label, "~"), str(manifest.get("started") or "~"))
        key = (manifest["benchmark"], manifest["answer_type"])
        side.runs.setdefault(key, {})[int(manifest["seed"])] = store.records()
    return [sides[k] for k in sorted(sides, key=lambda k: (started[k], k))]


def resolve(spec: str, results_dir: Path | None) -> list[Side]:
    """The model(s) a command-line argument names (see the module docstring)."""
    path = Path(spec)
    if path.is_dir():
        found = load_sides(path)
        if found:
            return found
        if (path / "config.json").is_file():
            return [_by_fingerprint(path, results_dir)]
        raise ReasonkitError(f"{path}: no result files (seed*.jsonl with a manifest) and no model export "
                             f"(config.json) in it")
    if results_dir is None or not Path(results_dir).is_dir():
        raise ReasonkitError(f"{spec}: not a folder; to name a model recorded in a results folder pass "
                             f"--results-dir (not found: {results_dir})")
    known = load_sides(Path(results_dir))
    exact = [s for s in known if spec in (s.label, s.model)]
    matches = exact or [s for s in known if s.label.startswith(spec)]
    if len(matches) == 1:
        return matches
    names = ", ".join(s.label for s in known) or "(none)"
    why = "is ambiguous" if matches else "is not recorded"
    raise ReasonkitError(f"{spec}: {why} in {results_dir} (models there: {names})")


def _by_fingerprint(model_dir: Path, results_dir: Path | None) -> Side:
    from reasonkit.backends.loading import model_fingerprint

    if results_dir is None or not Path(results_dir).is_dir():
        raise ReasonkitError(f"{model_dir}: a model folder; pass --results-dir holding its evals")
    fingerprint = model_fingerprint(str(model_dir))
    for side in load_sides(Path(results_dir)):
        if side.fingerprint == fingerprint:
            side.label = f"{model_dir.name} ({side.label})"
            return side
    raise ReasonkitError(f"{model_dir}: no results of these weights in {results_dir} (run `reasonkit eval "
                         f"<benchmark> --model {model_dir} --results-dir {results_dir}` first)")


def compare(a: Side, b: Side, *, reps: int = stats.BOOTSTRAP_REPS, seed: int = 0,
            show_flips: int = 0) -> dict[str, Any]:
    """B against A on every (dataset, answer_type) both recorded; the ones only one side has are listed."""
    rows, pairings = [], []
    for key in sorted(set(a.runs) & set(b.runs)):
        pairing = stats.pair_runs(a.runs[key], b.runs[key])
        row = {"dataset": key[0], "answer_type": key[1], "seeds_a": sorted(a.runs[key]),
               "seeds_b": sorted(b.runs[key]), **stats.compare_dataset(pairing, reps=reps, seed=seed)}
        if show_flips:
            row["flips"] = _flip_details(pairing, a.runs[key], b.runs[key], show_flips)
        rows.append(row)
        pairings.append(pairing)
    out: dict[str, Any] = {
        "a": a.label, "b": b.label, "model_a": a.model, "model_b": b.model, "datasets": rows,
        "only_in_a": [f"{d}/{t}" for d, t in sorted(set(a.runs) - set(b.runs))],
        "only_in_b": [f"{d}/{t}" for d, t in sorted(set(b.runs) - set(a.runs))],
    }
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_type[row["answer_type"]].append(i)
    out["macro"] = [{"dataset": "macro avg", "answer_type": t, **stats.macro([rows[i] for i in idx],
                                                                           [pairings[i] for i in idx])}
                    for t, idx in sorted(by_type.items()) if len(idx) > 1]
    for row in rows:
        row.pop("_replicates", None)
    return out


def _flip_details(pairing: stats.Paired, a_seeds, b_seeds, n: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``n`` questions gained and lost, with what each model answered (first seed)."""
    a_first = {r["id"]: r for r in a_seeds[min(a_seeds)]}
    b_first = {r["id"]: r for r in b_seeds[min(b_seeds)]}
    index = {qid: i for i, qid in enumerate(pairing.ids)}

    def detail(qid: str) -> dict[str, Any]:
        ra, rb = a_first[qid], b_first[qid]
        i = index[qid]
        return {"id": qid, "video": ra.get("video_id"), "answer": ra.get("answer"), "question": ra.get("question"),
                "a_extracted": ra.get("extracted"), "b_extracted": rb.get("extracted"),
                "a_score": float(pairing.a[i]), "b_score": float(pairing.b[i])}

    changed = stats.flips(pairing)
    return {k: [detail(q) for q in ids[:n]] for k, ids in changed.items()}


def comparisons(specs: list[str], *, baseline: str | None, results_dir: Path | None, **kw: Any) -> list[dict]:
    """Every side against the baseline (``--baseline``, else the first side named)."""
    sides = [s for spec in specs for s in resolve(spec, results_dir)]
    named = [s for s in sides if baseline in (s.label, s.model)]  # a model of a results folder named above
    base = (named or resolve(baseline, results_dir))[0] if baseline else (sides[0] if sides else None)
    others = [s for s in sides if base is None or s.label != base.label]
    if base is None or not others:
        raise ReasonkitError("compare needs two models: name A and B (or a results folder holding several "
                             "models, or --baseline X and one more)")
    return [compare(base, other, **kw) for other in others]


def _p(value: float) -> str:
    return "-" if value != value else ("<0.001" if value < 0.001 else f"{value:.3f}")


def print_comparison(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # "unpaired": recorded by one side only; "discordant": right for one model only (what McNemar tests).
    table = Table("dataset", "answer", "paired", "unpaired A/B", "A %", "B %", "Δ B−A", "95% CI by video",
                  "discordant A/B", "McNemar p", title=f"B = {result['b']}  vs  A = {result['a']}")
    for row in [*result["datasets"], *result["macro"]]:
        discord = "-" if row["a_only_right"] is None else f"{row['a_only_right']} / {row['b_only_right']}"
        seeds = "" if row.get("seed_pairs", 1) <= 1 else f" ({row['seed_pairs']} seed pairs, max)"
        table.add_row(row["dataset"], row["answer_type"], str(row["paired"]), f"{row['only_a']} / {row['only_b']}",
                      f"{row['acc_a']:.1f}", f"{row['acc_b']:.1f}", f"{row['diff']:+.1f}",
                      f"[{row['ci95_low']:+.1f}, {row['ci95_high']:+.1f}]", discord, _p(row["mcnemar_p"]) + seeds)
    console.print(table)
    for row in result["datasets"]:
        if row["only_a"] or row["only_b"]:
            console.print(f"[yellow]{row['dataset']}: {row['only_a']} question(s) recorded only by A, "
                          f"{row['only_b']} only by B: not compared (finish the runs with `reasonkit eval`)")
    for name, where in (("A", result["only_in_a"]), ("B", result["only_in_b"])):
        if where:
            console.print(f"[yellow]only {name} recorded: {', '.join(where)} (not compared)")
    for row in result["datasets"]:
        for kind, items in row.get("flips", {}).items():
            if items:
                console.print(f"[bold]{row['dataset']}: {kind} by B[/] ({len(items)} shown)")
            for f in items:
                question = (f["question"] or "").replace("\n", " ")[:70]
                console.print(f"  {f['id']}  ref {f['answer']}  A {f['a_extracted']} → B {f['b_extracted']}  "
                              f"{question}", markup=False, highlight=False)


def _no_nan(value: Any) -> Any:
    """NaN (no paired questions) as null: strict JSON readers reject NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def run_compare(specs: list[str], *, baseline: str | None = None, results_dir: Path | None = None,
                as_json: bool = False, show_flips: int = 0) -> list[dict[str, Any]]:
    results = comparisons(specs, baseline=baseline, results_dir=results_dir, show_flips=show_flips)
    if as_json:
        print(json.dumps(_no_nan(results), indent=2))
    else:
        for result in results:
            print_comparison(result)
    return results
