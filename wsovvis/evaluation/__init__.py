"""YouTube-VIS / LV-VIS video mask AP, identical to the official evaluators, batched per video.

    from wsovvis.evaluation import evaluate, evaluate_full, format_stats_table
    stats = evaluate("valid.json", "results.json")                  # {"AP": ..., ..., "ARl": ...}
    res = evaluate_full("lvvis_val.json", preds, flavor="lvvis")    # + precision/recall, per category
    print(format_stats_table(res))

The names are loaded on first use (PEP 562), so that importing a submodule (``wsovvis.evaluation.cli``) does not
load numpy before that module has set up how (see `wsovvis.evaluation.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EvalResult": "wsovvis.evaluation.evaluator",
    "evaluate": "wsovvis.evaluation.evaluator",
    "evaluate_full": "wsovvis.evaluation.evaluator",
    "STAT_NAMES": "wsovvis.evaluation.params",
    "format_per_category_table": "wsovvis.evaluation.table",
    "format_stats_table": "wsovvis.evaluation.table",
    "print_tables": "wsovvis.evaluation.table",
}

__all__ = [
    "EvalResult",
    "STAT_NAMES",
    "evaluate",
    "evaluate_full",
    "format_per_category_table",
    "format_stats_table",
    "print_tables",
]

if TYPE_CHECKING:
    from wsovvis.evaluation.evaluator import EvalResult, evaluate, evaluate_full
    from wsovvis.evaluation.params import STAT_NAMES
    from wsovvis.evaluation.table import format_per_category_table, format_stats_table, print_tables


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
