"""Matplotlib figures for the HTML report, returned as inline SVG text (no files, no network to view them).
matplotlib is the optional ``report`` extra; it is imported here only, when a report is written."""

from __future__ import annotations

import io
from typing import Any

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from reasonkit.errors import ReasonkitError

        raise ReasonkitError("the HTML report needs matplotlib: pip install 'reasonkit[report]'") from None
    matplotlib.use("Agg")  # no display; must precede the pyplot import
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})  # text stays text: searchable and small
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def _whisker(ax, x: float, lo: float | None, hi: float | None, width: float) -> None:
    """A CI drawn at its own ends: with several seeds the bar is the seed mean and the CI the first seed's, so the
    bar need not lie inside it (error bars relative to the bar would be negative)."""
    if lo is None or hi is None or lo != lo:
        return
    ax.vlines(x, lo, hi, color="#333", lw=1)
    ax.hlines([lo, hi], x - width * 0.15, x + width * 0.15, color="#333", lw=1)


def _value(ax, x: float, accuracy: float, ci_high: float | None, fmt: str) -> None:
    """The bar's value above the bar and its whisker (a 0% bar is otherwise invisible)."""
    top = max(accuracy, ci_high if ci_high is not None and ci_high == ci_high else accuracy)
    ax.text(x, top + 1.5, fmt % accuracy, ha="center", va="bottom", fontsize=7)


def accuracy_bars(rows: list[dict[str, Any]], models: list[str]) -> str:
    """Accuracy per dataset, one bar per model, whiskers at the 95% video-clustered CI; per-seed dots."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(r["label"] for r in rows))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(datasets) * max(1, len(models)) ** 0.5 + 2), 3.2))
    for m, model in enumerate(models):
        for d, dataset in enumerate(datasets):
            row = next((r for r in rows if r["model"] == model and r["label"] == dataset), None)
            if row is None:
                continue
            x = d - 0.4 + width * (m + 0.5)
            ax.bar(x, row["accuracy"], width * 0.9, color=COLORS[m % len(COLORS)], label=model if d == 0 else None)
            _whisker(ax, x, row.get("ci95_low"), row.get("ci95_high"), width)
            _value(ax, x, row["accuracy"], row.get("ci95_high"), "%.1f")
            seeds = row.get("seed_accuracies") or []
            if len(seeds) > 1:
                ax.scatter([x] * len(seeds), seeds, s=9, color="black", zorder=3)
    ax.set_xticks(range(len(datasets)), datasets, rotation=20 if len(datasets) > 4 else 0)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _svg(fig)


def difference_forest(comparison: dict[str, Any]) -> str:
    """B − A per dataset (and macro) with the paired bootstrap CI; a dashed line at no difference."""
    plt = _pyplot()
    rows = [*comparison["datasets"], *comparison["macro"]]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 0.9))
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        color = "#55A868" if row["ci95_low"] > 0 else "#C44E52" if row["ci95_high"] < 0 else "#666"
        ax.plot([row["ci95_low"], row["ci95_high"]], [y, y], color=color, lw=2)
        ax.plot([row["diff"]], [y], "o", color=color)
    ax.axvline(0, color="#999", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [f"{r['dataset']} ({r['answer_type']})" for r in reversed(rows)])
    ax.set_xlabel(f"accuracy difference, points: {comparison['b']} − {comparison['a']}")
    return _svg(fig)


def type_bars(rows: list[dict[str, Any]], series: list[str]) -> str:
    """Accuracy per question type, one bar per series (a model, or a model and answer type)."""
    plt = _pyplot()
    labels = list(dict.fromkeys(r["label"] for r in rows))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2), 3.0))
    for m, model in enumerate(series):
        for i, label in enumerate(labels):
            row = next((r for r in rows if r["series"] == model and r["label"] == label), None)
            if row is not None:
                x = i - 0.4 + width * (m + 0.5)
                ax.bar(x, row["accuracy"], width * 0.9, color=COLORS[m % len(COLORS)], label=model if i == 0 else None)
                _whisker(ax, x, row["ci95_low"], row["ci95_high"], width)
                _value(ax, x, row["accuracy"], row["ci95_high"], "%.0f")
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 5 else 0,
                  ha="right" if len(labels) > 5 else "center")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _svg(fig)
