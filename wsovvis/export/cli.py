"""Export datasets for image trainers: COCO JSON, and sharded TFRecords for OWL-ViT (Scenic / TFDS); check TFRecords.

``wsovvis export coco``      YouTube-VIS tubes -> COCO instances (one image per frame)
``wsovvis export tfrecord``  COCO (or tubes) + images -> ``<out>-0000i-of-0000N.tfrecord`` shards
``wsovvis export check``     read TFRecord shards back and verify every record
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="FORMAT", required=True)
    c = sub.add_parser("coco", help="YouTube-VIS tubes -> COCO instances JSON (one image per frame)")
    c.add_argument("--tubes", required=True, help="YouTube-VIS JSON (GT or pseudo tubes)")
    c.add_argument("--img_root", help="frame folder; when given, every exported frame must exist there")
    c.add_argument("--out", required=True, help="COCO JSON to write")
    c.add_argument("--every", type=int, default=1, help="keep every N-th frame (default 1: all)")
    c.add_argument("--polygons", action="store_true", help="polygons (every outer part; holes filled) instead of RLE")
    t = sub.add_parser("tfrecord", help="COCO or tubes + images -> sharded TFRecords (Scenic / TFDS layouts)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--coco", help="COCO instances JSON")
    src.add_argument("--tubes", help="YouTube-VIS JSON, exported frame by frame first (see --every)")
    t.add_argument("--every", type=int, default=1, help="with --tubes: keep every N-th frame")
    t.add_argument("--img_root", required=True, help="image folder (file_name is relative to it)")
    t.add_argument("--out", required=True, help="shard prefix, e.g. DIR/train -> DIR/train-00000-of-00004.tfrecord")
    t.add_argument("--shards", type=int, default=1)
    t.add_argument("--profile", choices=("scenic", "tfds"), default="scenic",
                   help="scenic: Scenic's COCO TFRecord keys (image/encoded, height, width); tfds: TFDS COCO keys")
    t.add_argument("--workers", type=int, default=1, help="processes writing shards in parallel")
    t.add_argument("--segmentation", action="store_true", help="scenic: add objects/segmentation (a PNG per object)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace existing shards with this prefix (and, tfds, the folder's TFDS metadata)")
    t.add_argument("--tfds_name", help="tfds: dataset name in dataset_info.json (default: the folder's, see README)")
    t.add_argument("--tfds_version", help="tfds: dataset version (default: the folder name if x.y.z, else 1.0.0)")
    k = sub.add_parser("check", help="read TFRecord shards back and verify every record")
    k.add_argument("paths", nargs="+", help="files, globs or a shard prefix (DIR/train)")
    k.add_argument("--label_map", help="label_map.json (default: the one beside the first file)")
    k.add_argument("--report", help="write the full check report (JSON) here")


def _frames_missing(coco: dict, img_root: str) -> list[str]:
    return [im["file_name"] for im in coco["images"] if not os.path.isfile(os.path.join(img_root, im["file_name"]))]


def _export_coco(args: argparse.Namespace) -> int:
    from wsovvis.data import ytvis
    from wsovvis.data.coco import write_coco, ytvis_to_coco

    ds = ytvis.load(args.tubes, require_annotations=True)
    coco = ytvis_to_coco(ds.data, every=args.every, polygons=args.polygons, source=args.tubes)
    if args.img_root:
        missing = _frames_missing(coco, args.img_root)
        if missing:
            raise WsovvisError(f"{args.img_root}: {len(missing)} exported frame(s) are missing, e.g. {missing[:3]}")
    write_coco(coco, args.out)
    log.info("wrote %s: %d images, %d annotations, %d categories (%s)", args.out, len(coco["images"]),
             len(coco["annotations"]), len(coco["categories"]), "polygons" if args.polygons else "RLE")
    return 0


def _export_tfrecord(args: argparse.Namespace) -> int:
    from wsovvis.export.shards import export_tfrecord

    if args.tubes:
        from wsovvis.data import ytvis
        from wsovvis.data.coco import ytvis_to_coco

        tubes = ytvis.load(args.tubes, require_annotations=True).data
        coco, source = ytvis_to_coco(tubes, every=args.every, source=args.tubes), args.tubes
    else:
        coco, source = args.coco, args.coco
    rep = export_tfrecord(coco, args.img_root, args.out, num_shards=args.shards, profile=args.profile,
                          workers=args.workers, segmentation=args.segmentation, overwrite=args.overwrite,
                          source=source, tfds_name=args.tfds_name, tfds_version=args.tfds_version)
    c = rep["counts"]
    print(f"wrote {c['records']} of {c['images']} images to {len(rep['shards'])} {rep['profile']} shard(s) "
          f"({c['boxes']} boxes, {c['empty_images']} images without boxes, {c['reencoded']} re-encoded); "
          f"skipped {c['skipped']} image(s){' ' + str(c['skipped_by_kind']) if c['skipped'] else ''}, "
          f"clipped {c['boxes_clipped']} box(es); "
          f"label map {rep['label_map']}")
    if c["records"] == 0:
        raise WsovvisError(f"{source}: no image could be written (all {c['images']} skipped: {c['skipped_by_kind']})")
    return 0


def _check(args: argparse.Namespace) -> int:
    from wsovvis.export.reader import check_tfrecords, expand_paths

    rep = check_tfrecords(expand_paths(args.paths), args.label_map)
    if args.report:
        atomic_write_json(args.report, rep, indent=1)
    for pr in rep["problems"][:20]:
        where = f"{Path(pr['file']).name}" + (f" record {pr['record']} (image {pr['image_id']})"
                                              if pr["record"] is not None else "")
        print(f"error: {where}: {pr['message']}", file=sys.stderr)
    if len(rep["problems"]) > 20:
        print(f"... and {len(rep['problems']) - 20} more problems", file=sys.stderr)
    print(f"{'ok' if rep['ok'] else 'FAILED'}: {len(rep['files'])} file(s), {json.dumps(rep['counts'])}")
    return 0 if rep["ok"] else 1


def main(args: argparse.Namespace) -> int:
    return {"coco": _export_coco, "tfrecord": _export_tfrecord, "check": _check}[args.what](args)
