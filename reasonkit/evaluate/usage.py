"""Token usage and cost of an eval run: summed from the records (each carries its request's usage, retries
included), so a resumed or sharded run adds up across its processes; cost only where prices are configured."""

from __future__ import annotations

import json
from typing import Any

KEYS = ("prompt_tokens", "completion_tokens", "requests")


def total_usage(records: list[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(KEYS, 0)
    for record in records:
        for key in KEYS:
            out[key] += int((record.get("usage") or {}).get(key) or 0)
    return out


def cost_usd(usage: dict[str, int], model_config: dict[str, Any]) -> float | None:
    """USD from ``model.price_input_per_mtok`` / ``price_output_per_mtok``; None when neither is set."""
    price_in, price_out = model_config.get("price_input_per_mtok"), model_config.get("price_output_per_mtok")
    if price_in is None and price_out is None:
        return None
    return round((usage["prompt_tokens"] * (price_in or 0) + usage["completion_tokens"] * (price_out or 0)) / 1e6, 6)


def usage_row(records: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """The usage columns of a `score` row."""
    usage = total_usage(records)
    return {**usage, "cost_usd": cost_usd(usage, (manifest.get("config") or {}).get("model") or {})}


def record_usage(store, cfg) -> None:
    """Write the usage (and cost) of everything the store holds into its manifest, after a run."""
    from reasonkit.evaluate.store import _write_atomic

    manifest = store.manifest()
    if manifest is None:
        return
    manifest["usage"] = usage_row(store.records(), {"config": {"model": cfg.model.model_dump()}})
    _write_atomic(store.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))


def print_usage(rows: list[dict[str, Any]]) -> None:
    """One line per scored run that counted tokens (the `score` table's footer): requests, tokens, cost."""
    for row in rows:
        if not row.get("requests") or row.get("dataset") in ("macro avg", "micro avg"):
            continue
        cost = f", ${row['cost_usd']:.4f}" if row.get("cost_usd") is not None else ""
        print(f"usage: {row['model']} {row['dataset']}: {row['requests']} requests, {row['prompt_tokens']} prompt + "
              f"{row['completion_tokens']} completion tokens{cost}")
