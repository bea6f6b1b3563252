"""``wsovvis autolabel images``: a folder of images (recursive) -> ``coco_export.json`` + a report.

Output folder::

    run.json                   what the results were made with (prompts, classes, params, models)
    per_image/<file>.json      one record per finished image (resume state, atomic)
    report.json                per-image counts and failures, run summary
    coco_export.json           COCO instances with a ``score`` per annotation

Re-running into the same folder with the same settings resumes (finished images are read back);
other settings need ``--overwrite`` (which starts again). One unreadable image is recorded and
the run goes on.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from wsovvis.autolabel.export import COCO_NAME, coco_from_records
from wsovvis.autolabel.images import AutolabelParams, label_image
from wsovvis.autolabel.models import Detector, Segmenter
from wsovvis.autolabel.prompts import PromptSet
from wsovvis.errors import WsovvisError
from wsovvis.pseudo.frames import read_rgb
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(root: str | os.PathLike) -> list[str]:
    """Image paths relative to ``root`` (POSIX, sorted), found recursively; hidden files and folders skipped."""
    r = Path(root)
    if not r.is_dir():
        raise WsovvisError(f"{r}: --images is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(r):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if not fn.startswith(".") and Path(fn).suffix.lower() in IMAGE_EXTS:
                found.append(Path(dirpath, fn).relative_to(r).as_posix())
    if not found:
        raise WsovvisError(f"{r}: no images found (looked recursively for {'/'.join(IMAGE_EXTS)})")
    return sorted(found)


@dataclass
class RunResult:
    records: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    resumed: int = 0
    coco: dict = field(default_factory=dict)

    @property
    def num_annotations(self) -> int:
        return sum(len(r["annotations"]) for r in self.records)

    def summary(self) -> str:
        n_img = len(self.records)
        with_any = sum(1 for r in self.records if r["annotations"])
        return (f"{n_img} image(s) labelled ({self.resumed} resumed), {len(self.failed)} failed; "
                f"{self.num_annotations} annotation(s), {with_any} image(s) with at least one")


def _record_path(out: Path, rel: str) -> Path:
    return out / "per_image" / f"{rel}.json"


def run_images(img_root: str | os.PathLike, out: str | os.PathLike, prompts: PromptSet, detector: Detector,
               segmenter: Segmenter | None, params: AutolabelParams, models: dict | None = None,
               overwrite: bool = False, progress: bool = True) -> RunResult:
    """Label every image under ``img_root`` into ``out`` (see the module docstring)."""
    img_root, out = Path(img_root), Path(out)
    files = list_images(img_root)
    setup = {"prompts": list(prompts.prompts), "class_ids": list(prompts.class_ids),
             "categories": list(prompts.categories), "params": params.to_dict(), "models": models or {}}
    run_file = out / "run.json"
    if overwrite and out.exists():
        for name in ("per_image", "run.json", "report.json", COCO_NAME):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    elif run_file.is_file():
        old = read_json(run_file, "autolabel run.json")
        if old != setup:
            changed = sorted(k for k in setup if old.get(k) != setup[k])
            raise WsovvisError(f"{out}: holds a run with other settings ({', '.join(changed)} differ); "
                               "use --overwrite to start again or another --out")
    atomic_write_json(run_file, setup, indent=1)
    res = RunResult()
    stats: dict = {}
    for rel in tqdm(files, desc="autolabel", unit="img", disable=not progress):
        rp = _record_path(out, rel)
        if rp.is_file():
            try:
                res.records.append(read_json(rp, "autolabel record"))
                res.resumed += 1
                continue
            except WsovvisError:
                log.warning("%s: torn record, labelling the image again", rp)
        try:
            image = read_rgb(img_root / rel)
        except WsovvisError as e:
            res.failed[rel] = str(e)
            log.warning("%s", e)
            continue
        img_stats: dict = {}
        anns = label_image(image, prompts, detector, segmenter, params, img_stats, where=rel)
        rec = {"file_name": rel, "height": int(image.shape[0]), "width": int(image.shape[1]),
               "annotations": anns, "stats": img_stats}
        atomic_write_json(rp, rec)
        res.records.append(rec)
        for k, v in img_stats.items():
            stats[k] = stats.get(k, 0) + v
    names = prompts.names
    per_class: dict[str, int] = {}
    for r in res.records:
        for a in r["annotations"]:
            per_class[names[a["category_id"]]] = per_class.get(names[a["category_id"]], 0) + 1
    res.coco = coco_from_records(res.records, prompts.categories,
                                 info={"description": "wsovvis autolabel", "params": params.to_dict(),
                                       "models": models or {}})
    atomic_write_json(out / COCO_NAME, res.coco)
    report = {"summary": res.summary(), "images": len(files), "labelled": len(res.records), "resumed": res.resumed,
              "annotations": res.num_annotations, "per_class": per_class, "stats": stats, "failed": res.failed,
              "per_image": {r["file_name"]: len(r["annotations"]) for r in res.records}}
    atomic_write_json(out / "report.json", report, indent=1)
    return res
