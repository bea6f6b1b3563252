"""Class-agnostic copy of a YouTube-VIS JSON: one category, original class kept per track."""

from __future__ import annotations

import argparse
import copy

from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def make_class_agnostic(data: dict, category_id: int = 1, category_name: str = "object", source: str = "input") -> dict:
    """Copy with one category; every video and track kept, the old class in ``orig_category_id``."""
    if "annotations" not in data:
        raise WsovvisError(
            f"{source}: has no 'annotations' (an images-only JSON): there are no tracks to make class-agnostic"
        )
    out = {k: v for k, v in data.items() if k not in ("categories", "annotations")}
    out["categories"] = [{"id": category_id, "name": category_name, "supercategory": category_name}]
    anns = []
    for a in data["annotations"]:
        b = copy.copy(a)
        b["orig_category_id"] = a.get("category_id")
        b["category_id"] = category_id
        anns.append(b)
    out["annotations"] = anns
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in_json", required=True, help="YouTube-VIS JSON with annotations")
    p.add_argument("--out_json", required=True)
    p.add_argument("--category_id", type=int, default=1)
    p.add_argument("--category_name", default="object")


def main(args: argparse.Namespace) -> int:
    ds = ytvis.load(args.in_json)
    out = make_class_agnostic(ds.data, args.category_id, args.category_name, source=args.in_json)
    ytvis.write(out, args.out_json)
    log.info(
        "%s: %d videos, %d tracks, %d categories -> 1 category '%s' (id %d)",
        args.out_json, len(out["videos"]), len(out["annotations"]), len(ds.categories),
        args.category_name, args.category_id,
    )
    return 0
