"""Scalar metrics of a run: ``metrics.jsonl`` in the run directory and Sacred's ``log_scalar``.

``metrics.jsonl`` holds one JSON object per line, ``{"iteration": i, "time": unix, <name>: value}``
(training lines carry ``loss``, each loss term, ``lr``, ``iter_time``, ``data_time``, ``memory_mb``;
evaluation lines carry ``eval/<stat>``). On resume, lines beyond the resumed iteration (written
after the last checkpoint of an interrupted run) are dropped so the file reads as one run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from wsovvis.utils.io import atomic_write_text
from wsovvis.utils.jsonl import read_jsonl
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def read_metrics(path: str | Path) -> list[dict]:
    """Parse ``metrics.jsonl``; a torn last line (killed writer) is ignored."""
    return read_jsonl(path)


class MetricsWriter:
    """Appends to ``metrics.jsonl`` and forwards every scalar to a Sacred run (when given)."""

    def __init__(self, run_dir: str | Path, sacred_run: Any = None, start_iter: int = 0) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.sacred_run = sacred_run
        rows = read_metrics(self.path)
        kept = [r for r in rows if r.get("iteration", 0) <= start_iter]
        if len(kept) != len(rows) or (rows and not self.path.read_text(encoding="utf-8").endswith("\n")):
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
            log.info("metrics.jsonl: dropped %d lines past iteration %d (resumed run)", len(rows) - len(kept),
                     start_iter)

    def write(self, iteration: int, values: dict[str, float]) -> None:
        clean = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in values.items()}
        row = {"iteration": iteration, "time": round(time.time(), 3), **clean}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.sacred_run is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v):
                    self.sacred_run.log_scalar(k, v, iteration)

