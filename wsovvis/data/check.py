"""Check a YouTube-VIS JSON against its frames (and optionally its id PNGs); list every problem.

Errors (exit status 1): invalid structure, duplicate ids, unknown video/category ids, per-frame
lists whose length is not the video length, missing or unreadable frames, frame sizes that differ
from the video size or from the mask size, areas or boxes that disagree with the masks.
Warnings: empty tracks, categories without tracks, areas that hold box areas (the OVIS quirk),
mask PNGs for frames that are not in the JSON.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from tqdm import tqdm

from wsovvis.data import masks as mask_io
from wsovvis.data import ytvis
from wsovvis.data.ytvis import Problem, video_length
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

PRINT_PER_KIND = 10
BOX_TOLERANCE = 1.0  # pixels; boxes written by other tools may round differently


@dataclass
class CheckReport:
    """``problems``: every finding; ``stats``: counts; ``coverage``: per category ``{id, name, tracks, videos}``."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    coverage: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_dict(self) -> dict:
        return {
            "json": self.source,
            "ok": not self.errors,
            "counts": {
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "by_kind": dict(sorted(Counter(f"{p.severity}:{p.kind}" for p in self.problems).items())),
            },
            "stats": self.stats,
            "category_coverage": self.coverage,
            "problems": [{"severity": p.severity, "kind": p.kind, "path": p.path, "message": p.message}
                         for p in self.problems],
        }


def _well_formed_video(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("id"), int) and isinstance(v.get("height"), int)
            and isinstance(v.get("width"), int) and isinstance(v.get("file_names"), list)
            and all(isinstance(f, str) for f in v["file_names"]))


def _to_rle(seg: Any, h: int, w: int) -> dict | None:
    """Compressed RLE (bytes counts) of any YTVIS segmentation, or None if it is not one."""
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
        return mask_utils.merge(mask_utils.frPyObjects(polys, h, w)) if polys else None
    if not isinstance(seg, dict) or not isinstance(seg.get("size"), list):
        return None
    if isinstance(seg.get("counts"), list):
        return mask_utils.frPyObjects(seg, h, w)
    if isinstance(seg.get("counts"), str):
        return {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    return None


def _mask_path(mask_root: Path, file_name: str) -> Path | None:
    rel = Path(file_name)
    for cand in (rel.parent / f"mask_{rel.stem}.png", rel.with_suffix(".png")):
        if (mask_root / cand).is_file():
            return mask_root / cand
    return None


def _check_frames(ds: ytvis.YTVIS, img_root: Path, mask_root: Path | None, rep: CheckReport,
                  progress: bool) -> dict[tuple[int, int], Any]:
    """Frames exist, open, and match the video size (and their mask PNG's size).

    Returns decoded id maps keyed by ``(video_id, t)`` when ``mask_root`` is given (for track checks).
    """
    id_maps: dict[tuple[int, int], Any] = {}
    out = rep.problems
    for i, v in enumerate(tqdm(ds.videos, desc="check frames", unit="video", disable=not progress)):
        if not _well_formed_video(v):
            continue
        missing = []
        first_fmt: tuple[Path, str] | None = None  # id format is decided per video, not per file
        for t, f in enumerate(v["file_names"]):
            p = f"videos[{i}].file_names[{t}]"
            path = img_root / f
            if not path.is_file():
                missing.append((p, path))
                continue
            try:
                with Image.open(path) as im:
                    fh, fw = im.height, im.width
            except (UnidentifiedImageError, OSError) as e:
                out.append(Problem(p, f"{path}: unreadable frame ({e})", kind="unreadable_frame"))
                continue
            if (fh, fw) != (v["height"], v["width"]):
                out.append(Problem(p, f"{path} is {fw}x{fh} but the video says {v['width']}x{v['height']} (WxH)",
                                   kind="size_mismatch"))
            if mask_root is None:
                continue
            mpath = _mask_path(mask_root, f)
            if mpath is None:
                continue
            try:
                ids, fmt = mask_io.read_ids_with_format(mpath)
            except WsovvisError as e:
                out.append(Problem(p, str(e), kind="unreadable_mask"))
                continue
            if first_fmt is None:
                first_fmt = (mpath, fmt)
            elif mask_io.ID_MEANING[fmt] != mask_io.ID_MEANING[first_fmt[1]]:
                out.append(Problem(p, f"mask {mpath} is a {fmt} PNG but {first_fmt[0]} is {first_fmt[1]}: their "
                                   f"pixels mean different ids ({mask_io.ID_MEANING[fmt]} vs "
                                   f"{mask_io.ID_MEANING[first_fmt[1]]})", kind="mixed_id_formats"))
                continue
            if ids.shape != (fh, fw):
                out.append(Problem(p, f"mask {mpath} is {ids.shape[1]}x{ids.shape[0]} but frame {path} is "
                                   f"{fw}x{fh} (WxH)", kind="size_mismatch"))
            id_maps[(v["id"], t)] = ids
        if missing:
            # one line per video keeps a whole missing folder readable
            shown = ", ".join(str(m[1]) for m in missing[:3]) + (" ..." if len(missing) > 3 else "")
            out.append(Problem(missing[0][0], f"{len(missing)} of {len(v['file_names'])} frames missing: {shown}",
                               kind="missing_frame"))
        if mask_root is not None:
            _orphan_masks(v, i, mask_root, out)
    return id_maps


def _orphan_masks(v: dict, i: int, mask_root: Path, out: list[Problem]) -> None:
    folders = {Path(f).parent for f in v["file_names"]}
    stems = {Path(f).stem for f in v["file_names"]}
    for folder in folders:
        d = mask_root / folder
        if not d.is_dir():
            continue
        extra = sorted(p.name for p in d.glob("*.png")
                       if p.stem not in stems and not (p.stem.startswith("mask_") and p.stem[5:] in stems))
        if extra:
            out.append(Problem(f"videos[{i}]", f"{len(extra)} mask PNG(s) in {d} for frames not in the JSON: "
                               f"{', '.join(extra[:3])}", severity="warning", kind="mask_without_frame"))


def _check_tracks(ds: ytvis.YTVIS, rep: CheckReport, id_maps: dict) -> None:
    """Areas/boxes against the masks, empty tracks, and masks against id PNGs (``track_id`` key)."""
    out = rep.problems
    box_area_hits = 0
    for i, a in enumerate(ds.annotations):
        v = ds.video_by_id.get(a.get("video_id")) if isinstance(a, dict) else None
        segs = a.get("segmentations") if isinstance(a, dict) else None
        if not _well_formed_video(v) or not isinstance(segs, list) or len(segs) != video_length(v):
            continue
        h, w = v["height"], v["width"]
        areas, boxes = a.get("areas"), a.get("bboxes")
        nonempty = 0
        for t, seg in enumerate(segs):
            if seg is None:
                continue
            try:
                r = _to_rle(seg, h, w)
                if r is None:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    px = int(mask_utils.area(r))
                    box = [float(c) for c in mask_utils.toBbox(r)]
            except (ValueError, TypeError) as e:
                out.append(Problem(f"annotations[{i}].segmentations[{t}]", f"undecodable mask ({e})", kind="bad_rle"))
                continue
            nonempty += px > 0
            if isinstance(areas, list) and t < len(areas) and isinstance(areas[t], (int, float)):
                if abs(areas[t] - px) > 0.5:
                    if abs(areas[t] - box[2] * box[3]) <= 0.5 and px != box[2] * box[3]:
                        box_area_hits += 1
                    else:
                        out.append(Problem(f"annotations[{i}].areas[{t}]",
                                           f"is {areas[t]} but the mask has {px} pixels", kind="area_mismatch"))
            if isinstance(boxes, list) and t < len(boxes) and isinstance(boxes[t], list) and len(boxes[t]) == 4:
                if max(abs(float(x) - y) for x, y in zip(boxes[t], box)) > BOX_TOLERANCE:
                    out.append(Problem(f"annotations[{i}].bboxes[{t}]",
                                       f"is {boxes[t]} but the mask's box is {box}", kind="bbox_mismatch"))
            tid = a.get("track_id")
            ids = id_maps.get((v["id"], t))
            if ids is not None and isinstance(tid, int):
                n = int((ids == tid).sum())
                if n != px:
                    out.append(Problem(f"annotations[{i}].segmentations[{t}]",
                                       f"mask has {px} pixels but id {tid} covers {n} in the id PNG",
                                       kind="mask_png_mismatch"))
        if nonempty == 0:
            out.append(Problem(f"annotations[{i}]", f"empty track (no non-empty mask in {len(segs)} frames)",
                               severity="warning", kind="empty_track"))
    if box_area_hits:
        out.append(Problem("annotations[*].areas", f"{box_area_hits} areas equal the box area w*h, not the mask "
                           "pixel count (an OVIS quirk); size-based APs/APm/APl will use them",
                           severity="warning", kind="box_areas"))


def _coverage(ds: ytvis.YTVIS, rep: CheckReport) -> None:
    tracks, videos = Counter(), defaultdict(set)
    for a in ds.annotations:
        if isinstance(a, dict):
            tracks[a.get("category_id")] += 1
            videos[a.get("category_id")].add(a.get("video_id"))
    empty = []
    for c in ds.categories:
        if not isinstance(c, dict):
            continue
        cid = c.get("id")
        rep.coverage.append({"id": cid, "name": c.get("name"), "tracks": tracks[cid], "videos": len(videos[cid]),
                             **({"partition": c["partition"]} if "partition" in c else {})})
        if tracks[cid] == 0:
            empty.append(f"{cid} '{c.get('name')}'")
    if ds.has_annotations and empty:
        shown = ", ".join(empty[:10]) + (f" ... (+{len(empty) - 10})" if len(empty) > 10 else "")
        rep.problems.append(Problem("categories", f"{len(empty)} of {len(rep.coverage)} categories have no tracks: "
                                    f"{shown}", severity="warning", kind="category_without_tracks"))


def check_dataset(
    src: str | Path | dict,
    img_root: str | Path | None = None,
    mask_root: str | Path | None = None,
    progress: bool = False,
) -> CheckReport:
    """Run every check; raises `WsovvisError` only when the file cannot be read as JSON at all."""
    data = src if isinstance(src, dict) else read_json(src, "YouTube-VIS JSON")
    rep = CheckReport(source="<memory>" if isinstance(src, dict) else str(src))
    rep.problems += ytvis.validate(data)
    if any(p.path == "$" or p.path in ("videos", "categories") for p in rep.problems):
        return rep  # no usable video/category lists: nothing else can be checked
    ds = ytvis.YTVIS(data, rep.source)
    id_maps: dict = {}
    if img_root is not None:
        img_root = Path(img_root)
        if not img_root.is_dir():
            raise WsovvisError(f"{img_root}: --img_root is not a folder")
        mask_root = Path(mask_root) if mask_root else None
        if mask_root is not None and not mask_root.is_dir():
            raise WsovvisError(f"{mask_root}: --mask_root is not a folder")
        id_maps = _check_frames(ds, img_root, mask_root, rep, progress)
    _check_tracks(ds, rep, id_maps)
    _coverage(ds, rep)
    rep.stats = {
        "videos": len(data["videos"]),
        "frames": sum(video_length(v) for v in data["videos"] if isinstance(v, dict)),
        "categories": len(data["categories"]),
        "tracks": len(ds.annotations),
        "masks": sum(1 for a in ds.annotations if isinstance(a, dict) and isinstance(a.get("segmentations"), list)
                     for s in a["segmentations"] if s is not None),
        "videos_without_tracks": len({v.get("id") for v in data["videos"] if isinstance(v, dict)}
                                     - {a.get("video_id") for a in ds.annotations if isinstance(a, dict)}),
    }
    return rep


def format_report(rep: CheckReport, per_kind: int = PRINT_PER_KIND) -> str:
    s = rep.stats
    lines = []
    by_kind: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for p in rep.problems:
        by_kind[(p.severity, p.kind)].append(p)
    for (sev, kind), probs in sorted(by_kind.items()):
        lines.append(f"{sev} {kind} ({len(probs)}):")
        lines += [f"  {p}" for p in probs[:per_kind]]
        if len(probs) > per_kind:
            lines.append(f"  ... and {len(probs) - per_kind} more (see --report)")
    if rep.coverage:
        ranked = sorted((c for c in rep.coverage if c["tracks"]), key=lambda c: -c["tracks"])
        cov = ", ".join(f"{c['name']}: {c['tracks']}" for c in ranked[:15])
        more = f" ... (+{len(ranked) - 15})" if len(ranked) > 15 else ""
        lines.append(f"tracks per category ({len(ranked)}/{len(rep.coverage)} categories used): {cov}{more}")
    lines.append(f"{rep.source}: {s.get('videos', 0)} videos, {s.get('frames', 0)} frames, {s.get('tracks', 0)} "
                 f"tracks, {s.get('categories', 0)} categories: {len(rep.errors)} errors, "
                 f"{len(rep.warnings)} warnings -> {'OK' if not rep.errors else 'FAILED'}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("json", help="YouTube-VIS JSON (GT or images-only)")
    p.add_argument("--img_root", help="frames folder; without it only the JSON itself is checked")
    p.add_argument("--mask_root", help="id PNGs (<video>/<stem>.png or mask_<stem>.png) to compare sizes/pixels")
    p.add_argument("--report", help="write the full findings as JSON here")
    p.add_argument("--no_progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Exit status 0 when there are no errors, 1 when there are (2 for unreadable input)."""
    rep = check_dataset(args.json, args.img_root, args.mask_root, progress=not args.no_progress)
    print(format_report(rep))
    if args.report:
        atomic_write_json(args.report, rep.to_dict(), indent=1)
        log.info("report: %s", args.report)
    return 1 if rep.errors else 0
