"""Readable AP tables (×100, 1 decimal, like papers print them) for the CLI, the trainer and the demo."""

from __future__ import annotations

import sys
from typing import IO, Any

from wsovvis.evaluation.params import STAT_NAMES

UNDEFINED = "-"  # a stat of -1: no GT in that area range / split


def _pct(v: float | None) -> str:
    return UNDEFINED if v is None or v < 0 else f"{100 * v:.1f}"


def _rows_of(result: Any) -> list[tuple[str, dict]]:
    metrics = result.metrics() if hasattr(result, "metrics") else result
    rows = [("all", metrics)]
    for split in ("base", "novel"):
        if isinstance(metrics.get(split), dict):
            rows.append((split, metrics[split]))
    return rows


def format_stats_table(result: Any, names: tuple[str, ...] = STAT_NAMES) -> str:
    """The 12 stats as a fixed-width table; ``result`` is an `EvalResult` or an `evaluate` dict.

    LV-VIS results get ``base`` and ``novel`` rows under ``all``.
    """
    rows = _rows_of(result)
    width = max(6, *(len(n) + 1 for n in names))
    head = " " * 6 + "".join(f"{n:>{width}}" for n in names)
    lines = [head]
    for label, m in rows:
        lines.append(f"{label:<6}" + "".join(f"{_pct(m.get(n)):>{width}}" for n in names))
    return "\n".join(lines)


def format_per_category_table(result: Any, sort_by_ap: bool = False, limit: int | None = None) -> str:
    """One line per category of an `EvalResult`: id, name, GT tracks, results, AP, AP50, AP75 (×100)."""
    rows = result.per_category()
    if sort_by_ap:
        rows = sorted(rows, key=lambda r: -1.0 if r["AP"] is None else r["AP"], reverse=True)
    if limit is not None:
        rows = rows[:limit]
    name_w = max([len("category")] + [len(r["name"]) for r in rows])
    lines = [f"{'id':>6}  {'category':<{name_w}} {'GT':>6} {'results':>8} {'AP':>6} {'AP50':>6} {'AP75':>6}"]
    for r in rows:
        lines.append(
            f"{r['id']:>6}  {r['name']:<{name_w}} {r['num_gt']:>6} {r['num_results']:>8} "
            f"{_pct(r['AP']):>6} {_pct(r['AP50']):>6} {_pct(r['AP75']):>6}"
        )
    return "\n".join(lines)


def print_tables(result: Any, per_category: bool = False, file: IO[str] | None = None) -> None:
    """Print the stats table (and the per-category table) of an `EvalResult` or `evaluate` dict."""
    file = file or sys.stdout
    print(format_stats_table(result), file=file)
    if per_category and hasattr(result, "per_category"):
        print(file=file)
        print(format_per_category_table(result), file=file)
