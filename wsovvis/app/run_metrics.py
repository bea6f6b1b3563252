"""The Metrics tab's logic: loss / AP curves and the AP table of a training run directory.

A run directory holds ``metrics.jsonl`` (one JSON object per line: ``{"iteration", "time",
<name>: value}``; training lines carry ``loss`` and its terms, evaluation lines ``eval/<stat>``,
written by `wsovvis.engine.metrics.MetricsWriter`) and, after an evaluation,
``inference/metrics.json`` (``{"protocol": {...}, "metrics": {...}}``). Both are read directly;
plots are drawn by `wsovvis.viz.plots` into the app's session folder, never into the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.evaluation.params import STAT_NAMES
from wsovvis.utils.io import read_json
from wsovvis.viz.plots import plot_ap, plot_losses

GROUPS = ("base", "novel")  # LV-VIS splits of the vocabulary


@dataclass
class RunView:
    """rows: parsed ``metrics.jsonl`` lines; final: ``inference/metrics.json`` or None; skipped: unparsable lines."""

    run_dir: Path
    rows: list[dict]
    final: dict | None
    skipped: int


def read_run(run_dir: str | Path) -> RunView:
    """Parse a run directory; `WsovvisError` naming the folder when it is not one."""
    if not str(run_dir).strip():
        raise WsovvisError("no run directory given: type the folder of a training run (it holds metrics.jsonl)")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise WsovvisError(f"{run_dir}: the run directory does not exist")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise WsovvisError(f"{run_dir}: has no metrics.jsonl; is it a training run directory (--run_dir / "
                           "OUTPUT_DIR of `train`)?")
    rows, skipped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1  # a torn last line of a killed writer, or a foreign line
            continue
        if isinstance(row, dict) and isinstance(row.get("iteration"), (int, float)):
            rows.append(row)
        else:
            skipped += 1
    final = None
    final_path = run_dir / "inference" / "metrics.json"
    if final_path.is_file():
        final = read_json(final_path, "evaluation metrics")
        if not isinstance(final, dict):
            final = None
    return RunView(run_dir, rows, final, skipped)


def _pct(v) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) and math.isfinite(v) else ""


def ap_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """(headers, rows) of every evaluation line: iteration, then each stat present, in percent.

    Columns follow `STAT_NAMES` order, then the LV-VIS ``base/AP`` and ``novel/AP`` when logged.
    """
    evals = sorted((r for r in rows if any(k.startswith("eval/") for k in r)), key=lambda r: r["iteration"])
    names = [s for s in STAT_NAMES if any(f"eval/{s}" in r for r in evals)]
    names += [f"{g}/AP" for g in GROUPS if any(f"eval/{g}/AP" in r for r in evals)]
    table = [[int(r["iteration"])] + [_pct(r.get(f"eval/{s}")) for s in names] for r in evals]
    return ["iteration"] + names, table


def final_summary(view: RunView) -> str:
    """One line about ``inference/metrics.json`` (protocol and AP), or an empty string."""
    if not view.final:
        return ""
    p = view.final.get("protocol") or {}
    m = view.final.get("metrics") or {}
    kind = "class-agnostic" if p.get("class_agnostic") else "per class"
    return (f"last evaluation: split {p.get('split', '?')}, {p.get('videos', '?')} videos, iteration "
            f"{p.get('iteration', '?')}, {kind}: AP {_pct(m.get('AP'))}, AP50 {_pct(m.get('AP50'))}")


def render_plots(view: RunView, out_dir: str | Path) -> tuple[Path | None, Path | None]:
    """(loss plot, AP plot) PNGs in ``out_dir``; None where the run has no such rows."""
    out_dir = Path(out_dir)
    stem = f"{view.run_dir.name or 'run'}_{len(view.rows)}"
    return (plot_losses(view.rows, out_dir / f"{stem}_loss.png"),
            plot_ap(view.rows, out_dir / f"{stem}_ap.png"))
