"""`reasonkit score`, the presentation: accuracy per (model, answer type, dataset) with coverage, bootstrap CIs
clustered by video, macro/micro averages and mean ± std over seeds (the statistics are in scoring/stats.py).
Different models are never pooled: one row each."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.evaluate.store import ResultStore, find_stores
from reasonkit.evaluate.usage import print_usage, usage_row
from reasonkit.scoring.stats import accuracy, bootstrap_ci, dedup, mean, std


def summarize(stores: list[ResultStore]) -> list[dict[str, Any]]:
    """One row per (model, answer_type, dataset), seeds aggregated; plus macro/micro rows per model."""
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for store in stores:
        manifest = store.manifest()
        if manifest is None:
            continue
        records = dedup(store.records())
        n_total = int(manifest.get("n_total") or len(records))
        scored = [r for r in records if r.get("status") == "ok"]
        key = (store.path.parents[2].name, manifest["answer_type"], manifest["benchmark"])
        runs[key].append({
            "seed": manifest["seed"], "records": records, "n_total": n_total, "scored": len(scored),
            "acc": accuracy(records, n_total), "model": manifest["model"],
            "disagree": sum(bool(r.get("scorers_disagree")) for r in scored),
            "retried": sum(1 for r in scored if r.get("retries")),
            "usage": usage_row(records, manifest),
        })
    rows = []
    for (slug, answer_type, dataset), seeds in sorted(runs.items()):
        seeds.sort(key=lambda s: s["seed"])
        accs = [s["acc"] for s in seeds]
        first = seeds[0]
        lo, hi = bootstrap_ci(first["records"] + [{"id": f"missing{i}", "correct": False}
                                                  for i in range(first["n_total"] - len(first["records"]))])
        rows.append({
            "model": slug, "model_ref": first["model"], "answer_type": answer_type, "dataset": dataset,
            "accuracy": 100 * mean(accs), "std_over_seeds": 100 * std(accs) if len(accs) > 1 else None,
            "seeds": [s["seed"] for s in seeds], "ci95_low": 100 * lo, "ci95_high": 100 * hi,
            "scored": first["scored"], "total": first["n_total"],
            "coverage": 100 * first["scored"] / first["n_total"] if first["n_total"] else float("nan"),
            "scorer_disagreements": first["disagree"], "retried": first["retried"],
            "correct": sum(bool(r.get("correct")) for r in first["records"]),
            **_sum_usage([s["usage"] for s in seeds]),
        })
    rows += _averages(rows)
    return rows


def _sum_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Token usage and cost summed over the seeds of a row (what the row's runs consumed)."""
    out: dict[str, Any] = {key: sum(u[key] for u in usages) for key in ("prompt_tokens", "completion_tokens",
                                                                           "requests")}
    costs = [u["cost_usd"] for u in usages if u["cost_usd"] is not None]
    out["cost_usd"] = round(sum(costs), 6) if costs else None
    return out


def _averages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Macro (mean over datasets, the paper's "Avg.") and micro (pooled over questions) per model."""
    out = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["answer_type"])].append(row)
    for (slug, answer_type), group in groups.items():
        if len(group) < 2:
            continue
        total = sum(r["total"] for r in group)
        base = {"model": slug, "model_ref": group[0]["model_ref"], "answer_type": answer_type,
                "std_over_seeds": None, "seeds": [], "ci95_low": None, "ci95_high": None,
                "scored": sum(r["scored"] for r in group), "total": total,
                "coverage": 100 * sum(r["scored"] for r in group) / total if total else float("nan"),
                "scorer_disagreements": sum(r["scorer_disagreements"] for r in group),
                "retried": sum(r["retried"] for r in group), "correct": sum(r["correct"] for r in group)}
        out.append({**base, "dataset": "macro avg", "accuracy": mean([r["accuracy"] for r in group])})
        out.append({**base, "dataset": "micro avg", "accuracy": 100 * base["correct"] / total if total else 0.0})
    return out


def _fmt(row: dict[str, Any]) -> list[str]:
    acc = f"{row['accuracy']:.1f}"
    if row.get("std_over_seeds") is not None:
        acc += f" ± {row['std_over_seeds']:.1f} ({len(row['seeds'])} seeds)"
    ci = "" if row.get("ci95_low") is None else f"[{row['ci95_low']:.1f}, {row['ci95_high']:.1f}]"
    from reasonkit.scoring.breakdown import format_budget

    return [row["model"], row["answer_type"], row["dataset"], acc, ci,
            f"{row['scored']}/{row['total']} ({row['coverage']:.0f}%)", str(row["scorer_disagreements"]),
            format_budget(row.get("frame_budget"))]


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    scorer = next((r["scorer"] for r in rows if r.get("scorer")), None)
    table = Table("model", "answer", "dataset", "accuracy %", "95% CI (by video)", "coverage", "disagree",
                  "frames sampled", title="reasonkit scores" + (f" (scorer: {scorer})" if scorer else ""))
    for row in rows:
        table.add_row(*_fmt(row))
    Console().print(table)


def write_outputs(rows: list[dict[str, Any]], results_dir: Path) -> tuple[Path, Path]:
    import pandas as pd

    csv_path, json_path = results_dir / "scores.csv", results_dir / "scores.json"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(rows, indent=2))
    return csv_path, json_path


def run_score(results_dir: Path, *, as_json: bool = False, scorer: str | None = None) -> list[dict[str, Any]]:
    from reasonkit.scoring.breakdown import annotate, print_type_table, with_scorer

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReasonkitError(f"{results_dir}: results directory not found")
    stores = with_scorer(find_stores(results_dir), scorer)
    rows = annotate(summarize(stores), stores, scorer)
    if not rows:
        raise ReasonkitError(f"{results_dir}: no result files (seed*.jsonl with a manifest) found")
    csv_path, json_path = write_outputs(rows, results_dir)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
        print_type_table(rows)
        print_usage(rows)
        print(f"written: {csv_path} {json_path}")
    return rows


def print_summary(stores: list[ResultStore]) -> None:
    """The table for the runs just made (``reasonkit eval`` prints it at the end)."""
    from reasonkit.scoring.breakdown import annotate

    rows = annotate(summarize(stores), stores, None)
    if rows:
        print_table(rows)
