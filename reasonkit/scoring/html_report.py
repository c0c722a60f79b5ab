"""`reasonkit report RESULTS_DIR --out report.html`: one self-contained HTML page to send to a colleague.

Everything is inside the file (CSS, a few lines of JS for filtering, SVG plots, base64 JPEG thumbnails), so it
opens offline. The numbers come from the same functions as `reasonkit score` and `reasonkit compare`."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from reasonkit import __version__
from reasonkit.errors import ReasonkitError
from reasonkit.evaluate.store import find_stores

TEMPLATE = "report.html.jinja"
DEFAULT_SAMPLES = 40  # per (model, dataset, answer type): thumbnails make the page ~8 kB per question


def build_context(results_dir: Path, *, baseline: str | None = None, samples: int = DEFAULT_SAMPLES,
                  media_roots: list[Path] | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data (tests read it too)."""
    from reasonkit.scoring import plots
    from reasonkit.scoring.breakdown import annotate, format_budget, run_key
    from reasonkit.scoring.report import summarize
    from reasonkit.scoring.stats import accuracy, dedup

    stores = [s for s in find_stores(results_dir) if s.manifest() is not None]
    if not stores:
        raise ReasonkitError(f"{results_dir}: no result files (seed*.jsonl with a manifest) found")
    rows = annotate(summarize(stores), stores, None)
    by_key: dict[tuple, list] = defaultdict(list)
    for store in stores:
        by_key[run_key(store)].append(store)
    for row in rows:
        seeds = by_key.get((row["model"], row["answer_type"], row["dataset"]), [])
        row["seed_accuracies"] = [100 * accuracy(dedup(s.records()), int(s.manifest().get("n_total") or 0))
                                  for s in sorted(seeds, key=lambda s: s.manifest()["seed"])]
        row["label"] = row["dataset"] if len({r["answer_type"] for r in rows}) == 1 \
            else f"{row['dataset']} ({row['answer_type']})"
        row["frames_text"] = format_budget(row.get("frame_budget"))
    from reasonkit.scoring.compare import load_sides

    # Models in the order they were first evaluated (the comparison's default baseline first), as in `compare`.
    order = [Path(side.label).name for side in load_sides(Path(results_dir))]
    rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    models = list(dict.fromkeys(r["model"] for r in rows))
    dataset_rows = [r for r in rows if not r["dataset"].endswith(" avg")]
    several_types = len({r["answer_type"] for r in dataset_rows}) > 1
    typed_datasets = {r["dataset"] for r in dataset_rows if r.get("by_type")}
    # Plot series: one per model (and answer type, when several); x: the type (and dataset, when several).
    type_rows = [{"model": r["model"], "series": f"{r['model']} ({r['answer_type']})" if several_types else r["model"],
                  "label": task if len(typed_datasets) == 1 else f"{r['dataset']}/{task}", "dataset": r["dataset"],
                  "answer_type": r["answer_type"], "type": task, **t}
                 for r in dataset_rows for task, t in (r.get("by_type") or {}).items()]
    series = list(dict.fromkeys(t["series"] for t in type_rows))
    comparisons = _comparisons(results_dir, baseline) if len(models) > 1 else []
    return {
        "title": f"reasonkit report: {Path(results_dir).resolve().name}", "results_dir": str(results_dir),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "version": __version__, "models": models,
        "rows": rows, "type_rows": type_rows,
        "errors": _error_records(stores), "comparisons": comparisons,
        "plots": {
            "accuracy": plots.accuracy_bars(rows, models),
            "types": plots.type_bars(type_rows, series) if type_rows else None,
            "comparisons": [plots.difference_forest(c) for c in comparisons],
        },
        "samples": _samples(stores, samples, media_roots or [Path(results_dir).resolve().parent]),
        "manifests": _manifests(stores),
        "lm_eval": _lm_eval_results(Path(results_dir)),
    }


def _comparisons(results_dir: Path, baseline: str | None) -> list[dict[str, Any]]:
    from reasonkit.scoring.compare import comparisons

    return comparisons([str(results_dir)], baseline=baseline, results_dir=Path(results_dir), show_flips=10)


def _error_records(stores) -> list[dict[str, Any]]:
    out = []
    for store in stores:
        for r in store.records():
            if r.get("status") == "error":
                out.append({"model": store.path.parents[2].name, "dataset": r.get("dataset"),
                            "seed": r.get("seed"), "id": r["id"], "video": r.get("video"), "error": r.get("error")})
    return out


def _samples(stores, per_run: int, roots: list[Path]) -> list[dict[str, Any]]:
    """The first ``per_run`` questions of each run's first seed, with thumbnails of the frames it saw."""
    from reasonkit.scoring.thumbnails import resolve_video, thumbnails

    first: dict[tuple, Any] = {}
    for store in sorted(stores, key=lambda s: s.manifest()["seed"]):
        first.setdefault((store.path.parents[2].name, store.manifest()["benchmark"],
                          store.manifest()["answer_type"]), store)
    cache: dict = {}
    out = []
    for (model, dataset, answer_type), store in sorted(first.items()):
        for r in store.records()[:per_run]:
            video = resolve_video(r.get("video"), roots)
            out.append({
                "model": model, "dataset": dataset, "answer_type": answer_type, "id": r["id"],
                "question": r.get("question") or "(question not recorded)", "choices": r.get("choices") or {},
                "answer": r.get("answer"), "extracted": r.get("extracted"), "correct": bool(r.get("correct")),
                "status": r.get("status"), "error": r.get("error"), "output": r.get("output") or "",
                "task": (r.get("meta") or {}).get("task") or "", "timestamps": r.get("frame_timestamps") or [],
                "thumbs": thumbnails(r, video, cache=cache) if video is not None and r.get("status") == "ok"
                else [],
                "thumb_note": "" if video is not None else "clip not found (pass --media-root)",
            })
    return out


def _lm_eval_results(results_dir: Path) -> list[dict[str, Any]]:
    """Rows of the lm-eval results `reasonkit eval --lm-eval-tasks` wrote beside each model's results."""
    import json

    rows = []
    for path in sorted(results_dir.glob("*/lm-eval/results.json")):
        saved = json.loads(path.read_text())
        for task, metrics in saved.get("results", {}).items():
            for key, value in metrics.items():
                name = key.split(",")[0]
                if name in ("alias", "sample_len") or name.endswith("_stderr") or not isinstance(value, (int, float)):
                    continue
                stderr = metrics.get(key.replace(name, f"{name}_stderr", 1))
                rows.append({"model": path.parent.parent.name, "task": task, "metric": name, "value": value,
                             "stderr": stderr if isinstance(stderr, (int, float)) else None,
                             "n": (saved.get("n_samples", {}).get(task) or {}).get("effective")})
    return rows


def _manifests(stores) -> list[dict[str, Any]]:
    out = []
    for store in stores:
        m = store.manifest()
        out.append({"model": store.path.parents[2].name, "model_ref": m.get("model"), "dataset": m["benchmark"],
                    "answer_type": m["answer_type"], "seed": m["seed"], "backend": m.get("backend"),
                    "scorer": m.get("primary_scorer"), "started": m.get("started"),
                    "generation": (m.get("identity") or {}).get("generation")})
    return out


def render(context: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError:
        raise ReasonkitError("the HTML report needs jinja2: pip install 'reasonkit[report]'") from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("reasonkit.scoring", "."),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda v: "-" if v is None or v != v else f"{v:.1f}"
    env.filters["p"] = lambda v: "-" if v is None or v != v else ("<0.001" if v < 0.001 else f"{v:.3f}")
    return env.get_template(TEMPLATE).render(**context)


def write_report(results_dir: Path, out: Path, **kw: Any) -> Path:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReasonkitError(f"{results_dir}: results directory not found")
    html = render(build_context(results_dir, **kw))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
