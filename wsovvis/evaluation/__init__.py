"""YouTube-VIS / LV-VIS video mask AP, identical to the official evaluators, batched per video.

    from wsovvis.evaluation import evaluate, evaluate_full, format_stats_table
    stats = evaluate("valid.json", "results.json")                  # {"AP": ..., ..., "ARl": ...}
    res = evaluate_full("lvvis_val.json", preds, flavor="lvvis")    # + precision/recall, per category
    print(format_stats_table(res))
"""

from wsovvis.evaluation.evaluator import EvalResult, evaluate, evaluate_full
from wsovvis.evaluation.params import STAT_NAMES
from wsovvis.evaluation.table import format_per_category_table, format_stats_table, print_tables

__all__ = [
    "EvalResult",
    "STAT_NAMES",
    "evaluate",
    "evaluate_full",
    "format_per_category_table",
    "format_stats_table",
    "print_tables",
]
