"""YouTube-VIS / LV-VIS video mask AP of a results file against a GT JSON (official semantics).

    wsovvis eval --gt valid.json --results results.json                 # readable table (x100, 1 decimal)
    wsovvis eval --gt lvvis_val.json --results r.json --flavor lvvis --json   # exactly one JSON line
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

# numpy's OpenBLAS starts a thread per core when numpy is imported, which spins for a while (about 0.05 s of CPU
# measured, taken from the evaluation's own threads on a 2-core machine); the evaluation does no BLAS work. Only
# when this module is what loads numpy (the `wsovvis eval` command) and the user has not chosen a count.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from wsovvis.evaluation.evaluator import evaluate_full  # noqa: E402
from wsovvis.evaluation.params import FLAVORS  # noqa: E402
from wsovvis.evaluation.table import format_per_category_table, format_stats_table  # noqa: E402
from wsovvis.utils.io import atomic_write_json  # noqa: E402
from wsovvis.utils.logging import get_logger  # noqa: E402

log = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground-truth YouTube-VIS JSON with 'annotations'")
    parser.add_argument("--results", required=True,
                        help="results JSON: a list of {video_id, category_id, score, segmentations}, or a "
                             "YouTube-VIS tube JSON (e.g. converted pseudo tubes; each track's 'score' is used, "
                             "videos and categories are matched to the GT by name)")
    parser.add_argument("--flavor", choices=FLAVORS, default="ytvis",
                        help="ytvis: crowd GT ignored; lvvis: crowd GT positive, int areas, base/novel rows")
    parser.add_argument("--class_agnostic", action="store_true",
                        help="ignore categories (official useCats=0, the unsupervised-VIS protocol)")
    parser.add_argument("--lenient", action="store_true",
                        help="accept segmentation lists whose length is not the video length (official zip truncation)")
    parser.add_argument("--allow_drops", action="store_true",
                        help="drop results whose category the GT lacks even when they are more than 5%% of all "
                             "(otherwise an error: usually the category ids are mapped wrongly)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON line with the stats (0..1)")
    parser.add_argument("--out", help="also write the stats and the per-category table to this JSON file")
    parser.add_argument("--per_category", action="store_true", help="also print the per-category AP table")
    parser.add_argument("--plot", help="write a per-category AP bar chart to this PNG")


def main(args: argparse.Namespace) -> int:
    # A one-shot command over millions of parsed JSON objects that hold no cycles: cycle collections would only
    # traverse them again and again (about 0.1 s each on a 70 MiB input); memory is freed by reference counting.
    gc.disable()
    res = evaluate_full(args.gt, args.results, flavor=args.flavor, class_agnostic=args.class_agnostic,
                        lenient=args.lenient, allow_drops=args.allow_drops)
    metrics = res.metrics()
    if args.out:
        payload = dict(metrics)
        payload["per_category"] = res.per_category()
        payload["settings"] = {"flavor": args.flavor, "class_agnostic": args.class_agnostic, "lenient": args.lenient,
                               "gt": str(args.gt), "results": str(args.results)}
        atomic_write_json(args.out, payload, indent=2)
        log.info("wrote %s", args.out)
    if args.plot:
        from wsovvis.evaluation.plot import plot_per_category_ap

        plot_per_category_ap(res, args.plot)
        log.info("wrote %s", args.plot)
    if args.json:
        print(json.dumps(metrics, separators=(",", ":")), flush=True)
    else:
        print(format_stats_table(res))
        if args.per_category:
            print()
            print(format_per_category_table(res))
    return 0
