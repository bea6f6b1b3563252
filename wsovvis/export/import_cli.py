"""Import image datasets as one-frame YouTube-VIS videos: COCO / LVIS instances, or COCO panoptic.

Polygons and uncompressed RLE are stored as compressed RLE. A COCO file written by
``wsovvis export coco`` (with its ``videos``/``tracks`` lists) comes back as the original videos.
A panoptic JSON (annotations with ``segments_info``) is read with its RGB PNGs
(``segment_id = R + 256*G + 256^2*B``), one instance per segment.
"""

from __future__ import annotations

import argparse

from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="FORMAT", required=True)
    c = sub.add_parser("coco", help="COCO instances or panoptic JSON -> YouTube-VIS JSON")
    c.add_argument("--coco", required=True, help="COCO instances / LVIS / panoptic JSON")
    c.add_argument("--out", required=True, help="YouTube-VIS JSON to write")
    c.add_argument("--panoptic_root", help="panoptic PNG folder (default: the JSON path without .json)")
    c.add_argument("--things_only", action="store_true", help="panoptic: keep only 'isthing' categories")
    c.add_argument("--box_only", choices=("mask", "skip"), default="mask",
                   help="annotations with a box and no segmentation: the box as the mask (default), or drop them")


def main(args: argparse.Namespace) -> int:
    from wsovvis.data import ytvis
    from wsovvis.data.coco import coco_to_ytvis
    from wsovvis.export import panoptic
    from wsovvis.utils.io import read_json

    data = read_json(args.coco, "COCO JSON")
    if isinstance(data, dict) and panoptic.is_panoptic(data):
        root = args.panoptic_root or panoptic.default_png_root(args.coco)
        data, rep = panoptic.panoptic_to_coco(data, root, things_only=args.things_only, source=args.coco)
        log.info("panoptic: %d segments (%d empty, skipped), %d stuff segments dropped, %d pixels with unlisted ids",
                 rep["segments"], rep["empty_segments"], rep["stuff_dropped"], rep["unlisted_pixels"])
    elif args.panoptic_root or args.things_only:
        log.warning("%s is not a panoptic JSON (no 'segments_info'); --panoptic_root/--things_only ignored", args.coco)
    out = coco_to_ytvis(data, source=args.coco, box_only=args.box_only)
    ytvis.write(out, args.out)
    print(f"wrote {args.out}: {len(out['videos'])} videos, {len(out['annotations'])} tracks, "
          f"{len(out['categories'])} categories")
    return 0

