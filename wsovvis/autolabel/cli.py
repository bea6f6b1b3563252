"""wsovvis autolabel: text-prompted labels (OWLv2 boxes -> SAM2 masks) for a folder of images, as COCO.

Examples::

    wsovvis autolabel images --images photos/ --vocab classes.txt --detector owlv2-base/ \\
        --segmenter sam2.1-hiera-tiny/ --out labels/
    wsovvis autolabel images ... --prompt_map prompts.json --class_threshold person=0.3 --agnostic_nms 0.7
    wsovvis autolabel images ... --mode detect --zip train.zip --zip_size 640
    wsovvis autolabel images ... --detector standin:colour --segmenter standin:colour   # no weights (demos, tests)

Videos go through ``wsovvis pseudo --engine owlv2_sam2`` (same flags for models and prompts).
Exit status: 0 with annotations, 1 when the run found nothing anywhere or an image failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsovvis.errors import WsovvisError


def add_model_arguments(p: argparse.ArgumentParser, with_mode: bool = True) -> None:
    """Flags shared by ``autolabel images`` and ``pseudo --engine owlv2_sam2``."""
    p.add_argument("--vocab", help="classes: a categories JSON (YouTube-VIS / LV-VIS / COCO) or a text file of names")
    p.add_argument("--prompt_map", help="prompts -> classes: JSON {prompt: class} / {class: [prompts]} or text "
                                        "'prompt = class' lines (default: each class prompted by its name)")
    p.add_argument("--detector", help="OWLv2 folder written by save_pretrained (model + processor), or standin:colour")
    p.add_argument("--segmenter", help="SAM2 folder written by save_pretrained (sam2 / sam2_video), or standin:colour")
    p.add_argument("--threshold", type=float, default=0.1, help="detection score threshold (0.1)")
    p.add_argument("--class_threshold", action="append", default=[], metavar="CLASS=T",
                   help="per-class threshold (repeatable), class by name or id")
    p.add_argument("--nms", type=float, default=0.5, help="per-class NMS IoU (0.5; 1 = off)")
    p.add_argument("--agnostic_nms", type=float, help="class-agnostic NMS IoU across classes (off by default)")
    p.add_argument("--max_detections", type=int, default=100, help="per image / key frame (100; 0 = no cap)")
    p.add_argument("--min_box_size", type=float, default=0.0, help="minimum box side in pixels (0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    p = sub.add_parser("images", help="a folder of images -> coco_export.json", description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (run.json, per_image/, report.json, coco_export.json)")
    add_model_arguments(p)
    p.add_argument("--mode", default="segment", choices=("detect", "segment"), help="boxes only, or boxes -> masks")
    p.add_argument("--polygons", action="store_true",
                   help="segmentations as polygons (every outer part; RLE where they cover the mask with IoU < 0.9)")
    p.add_argument("--zip", help="also write a training ZIP: images/ resized + coco_export.json in resized coordinates")
    p.add_argument("--zip_size", type=int, default=640, help="long side of the images in the ZIP (640)")
    p.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing --out")
    p.add_argument("--no_progress", action="store_true")


def class_thresholds(specs: list[str], prompts) -> dict[int, float]:
    """``["person=0.3", "2=0.5"]`` -> {class id: threshold}; unknown classes raise."""
    by_name = {c["name"].lower(): c["id"] for c in prompts.categories}
    ids = {c["id"] for c in prompts.categories}
    out = {}
    for s in specs:
        name, sep, val = s.rpartition("=")
        if not sep or not name.strip():
            raise WsovvisError(f"--class_threshold {s!r}: expected CLASS=THRESHOLD")
        try:
            thr = float(val)
        except ValueError:
            raise WsovvisError(f"--class_threshold {s!r}: {val!r} is not a number") from None
        key = name.strip()
        cid = int(key) if key.isdigit() and int(key) in ids else by_name.get(key.lower())
        if cid is None:
            raise WsovvisError(f"--class_threshold {s!r}: unknown class {key!r} (not in the vocabulary)")
        out[cid] = thr
    return out


def params_from_args(args: argparse.Namespace, prompts, mode: str = "segment", polygons: bool = False):
    from wsovvis.autolabel.images import AutolabelParams

    return AutolabelParams(threshold=args.threshold, class_thresholds=class_thresholds(args.class_threshold, prompts),
                           nms_iou=None if args.nms >= 1.0 else args.nms, agnostic_nms_iou=args.agnostic_nms,
                           max_detections=args.max_detections, min_box_size=args.min_box_size, mode=mode,
                           polygons=polygons)


def require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n, None)]
    if missing:
        raise WsovvisError(f"{' and '.join(missing)} required")


def main(args: argparse.Namespace) -> int:
    from wsovvis.autolabel.models import load_detector, load_segmenter
    from wsovvis.autolabel.prompts import load_prompt_set
    from wsovvis.autolabel.run import list_images, run_images

    require(args, "vocab", "detector", *(["segmenter"] if args.mode == "segment" else []))
    prompts = load_prompt_set(args.vocab, args.prompt_map)
    params = params_from_args(args, prompts, args.mode, args.polygons)
    list_images(args.images)  # an empty folder fails before the models load
    detector = load_detector(args.detector, args.device)
    segmenter = load_segmenter(args.segmenter, args.device) if args.mode == "segment" else None
    models = {"detector": str(args.detector), "segmenter": str(args.segmenter) if segmenter is not None else None}
    res = run_images(args.images, args.out, prompts, detector, segmenter, params, models, args.overwrite,
                     progress=not args.no_progress)
    print(f"autolabel: {res.summary()}; {Path(args.out) / 'coco_export.json'}, report {Path(args.out) / 'report.json'}")
    if args.zip:
        from wsovvis.autolabel.export import write_zip

        write_zip(args.zip, res.coco, args.images, args.zip_size)
        print(f"autolabel: training ZIP {args.zip} (long side {args.zip_size})")
    if res.failed:
        print(f"autolabel: {len(res.failed)} image(s) failed: " + "; ".join(res.failed.values()))
        return 1
    if res.num_annotations == 0:
        print("autolabel: nothing was found in any image; check the prompts, --threshold and the models "
              f"(per-image counts in {Path(args.out) / 'report.json'})")
        return 1
    return 0
