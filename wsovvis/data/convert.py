"""Convert per-frame instance-id mask PNGs (VideoCutLER / DAVIS / pseudo-tube layout) to YouTube-VIS JSON tubes.

Layout read::

    <img_root>/<video>/<frame>.jpg                 frames (jpg/jpeg/png), sorted by name
    <mask_root>/<video>/mask_<frame stem>.png      VideoCutLER naming, or
    <mask_root>/<video>/<frame stem>.png           DAVIS naming (0 = background, id = track)

Videos are the subfolders of both roots. A frame without a mask has no instances. Videos that
cannot or should not be converted are skipped with a reason (``SKIP_REASONS``) and listed in the
skip report; nothing is dropped silently, and a failure never leaves a partial ``out_json``.
"""

from __future__ import annotations

import argparse
import os
import struct
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError
from tqdm import tqdm

from wsovvis.data import masks as mask_io
from wsovvis.data import rle as rle_utils
from wsovvis.data import track_sidecar, ytvis
from wsovvis.data.image_header import image_size
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, clean_stale_tmp, file_sha256
from wsovvis.utils.logging import get_logger
from wsovvis.utils.workers import interruptible_pool

log = get_logger(__name__)

FRAME_EXTS = (".jpg", ".jpeg", ".png")
CHUNK_PIXELS = 4_000_000  # id maps the numpy encoder takes at once: few numpy calls per frame, bounded memory
NAMING_PREFIX, NAMING_PLAIN = "mask_<stem>.png", "<stem>.png"
SKIP_REASONS = {
    "skip_list": "named in --skip_list",
    "no_frames": "no frame images under img_root/<video> (missing or empty folder)",
    "mask_without_frame": "mask PNGs whose frame does not exist in img_root/<video>",
    "mixed_mask_names": "both mask_<stem>.png and <stem>.png files in one video",
    "min_masks": "fewer mask PNGs than --min_masks",
    "min_coverage": "#mask PNGs / #frames below --min_coverage",
    "unreadable_frame": "a frame image that cannot be opened",
    "unreadable_png": "a mask PNG that cannot be decoded (truncated, corrupt, wrong mode)",
    "size_mismatch": "mask PNG size differs from its frame's size, or frames of different sizes",
    "sidecar_mismatch": "a track in the mask PNGs that the video's tracks.json does not list",
    "bad_sidecar": "the video's tracks.json (track scores / categories) is malformed",
    "mixed_id_formats": "id PNGs of one video in formats that read ids differently (pixel value vs RGB colour)",
}


@dataclass(frozen=True)
class ConvertOptions:
    """Per-video settings shipped to worker processes."""

    img_root: str
    mask_root: str
    min_masks: int = 3
    min_coverage: float = 0.2
    id_format: str = "auto"
    ignore_value: int | None = None


def _skip(name: str, reason: str, detail: str) -> dict:
    return {"name": name, "skip": reason, "detail": detail}


def _list_frames(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(FRAME_EXTS))


def _match_masks(name: str, frames: list[str], mask_dir: Path) -> dict:
    """Map frame index -> mask path and name the naming pattern, or return a skip record."""
    pngs = sorted(e.name for e in os.scandir(mask_dir) if e.is_file() and e.name.lower().endswith(".png"))
    stem_to_index = {os.path.splitext(f)[0]: i for i, f in enumerate(frames)}
    folder = str(mask_dir)
    found: dict[int, str] = {}
    used: Counter = Counter()
    orphans = []
    for png in pngs:
        stem = png[:-4]
        if stem.startswith("mask_") and stem[5:] in stem_to_index:
            idx, pattern = stem_to_index[stem[5:]], NAMING_PREFIX
        elif stem in stem_to_index:
            idx, pattern = stem_to_index[stem], NAMING_PLAIN
        else:
            orphans.append(png)
            continue
        used[pattern] += 1
        found[idx] = os.path.join(folder, png)
    if orphans:
        shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
        return _skip(name, "mask_without_frame", f"{len(orphans)} mask PNG(s) in {mask_dir} with no frame: {shown}")
    if len(used) > 1:
        return _skip(name, "mixed_mask_names", f"{mask_dir}: {used[NAMING_PREFIX]} files named {NAMING_PREFIX} "
                     f"and {used[NAMING_PLAIN]} named {NAMING_PLAIN}")
    return {"masks": found, "naming": next(iter(used), None)}


def _frame_sizes(img_dir: Path, frames: list[str]) -> list[tuple[int, int]] | dict:
    sizes, folder = [], str(img_dir)
    for f in frames:
        try:
            sizes.append(image_size(os.path.join(folder, f)))
        except (UnidentifiedImageError, OSError, struct.error) as e:
            return _skip(img_dir.name, "unreadable_frame", f"{img_dir / f}: cannot open image ({e})")
    return sizes


def convert_video(name: str, opts: ConvertOptions) -> dict:
    """One video -> ``{name, video: {...}, tracks: [...], naming, formats}`` or ``{name, skip, detail}``.

    ``tracks``: ``[{track_id, segmentations, bboxes, areas}]`` with lists of the video's length.
    """
    img_dir, mask_dir = Path(opts.img_root) / name, Path(opts.mask_root) / name
    if not img_dir.is_dir():
        return _skip(name, "no_frames", f"{img_dir} does not exist (the video has masks but no frames)")
    frames = _list_frames(img_dir)
    if not frames:
        return _skip(name, "no_frames", f"{img_dir} has no {'/'.join(FRAME_EXTS)} images")
    if mask_dir.is_dir():
        matched = _match_masks(name, frames, mask_dir)
        if "skip" in matched:
            return matched
    else:
        matched = {"masks": {}, "naming": None}
    found: dict[int, str] = matched["masks"]
    if len(found) < opts.min_masks:
        where = "" if mask_dir.is_dir() else f" (no folder {mask_dir})"
        return _skip(name, "min_masks", f"{len(found)} mask PNG(s){where} < --min_masks {opts.min_masks}")
    coverage = len(found) / len(frames)
    if coverage < opts.min_coverage:
        return _skip(name, "min_coverage", f"{len(found)} mask PNGs for {len(frames)} frames = {coverage:.3f} "
                     f"< --min_coverage {opts.min_coverage}")
    sizes = _frame_sizes(img_dir, frames)
    if isinstance(sizes, dict):
        return sizes
    if len(set(sizes)) > 1:
        odd = next(i for i, s in enumerate(sizes) if s != sizes[0])
        return _skip(name, "size_mismatch", f"{img_dir / frames[odd]} is {sizes[odd][1]}x{sizes[odd][0]} but "
                     f"{frames[0]} is {sizes[0][1]}x{sizes[0][0]} (WxH)")
    h, w = sizes[0]
    length = len(frames)
    tracks: dict[int, dict] = {}
    formats: dict[str, str] = {}
    todo = sorted(found)
    # The numpy encoder pays per call, so it takes maps in chunks; the compiled one takes each map as it
    # is decoded, which lets the allocator reuse the one decode buffer instead of faulting in fresh pages.
    compiled = rle_utils.has_compiled_encoder()
    chunk = 1 if compiled else max(1, CHUNK_PIXELS // (h * w))
    stack = None
    first: tuple[Path, str] | None = None  # the video's first PNG and its format: auto detection is per video
    for c in range(0, len(todo), chunk):
        part, maps = todo[c:c + chunk], []
        for t in part:
            try:
                ids, fmt, reason = mask_io.decode_ids(found[t], opts.id_format, opts.ignore_value)
            except WsovvisError as e:
                return _skip(name, "unreadable_png", str(e))
            formats.setdefault(fmt, reason)
            if first is None:
                first = (found[t], fmt)
            elif mask_io.ID_MEANING[fmt] != mask_io.ID_MEANING[first[1]]:
                return _skip(name, "mixed_id_formats", f"{found[t]} is a {fmt} PNG (id = {mask_io.ID_MEANING[fmt]}) "
                             f"but {first[0]} is {first[1]} (id = {mask_io.ID_MEANING[first[1]]}): one video's masks "
                             "must use one id format (--id_format forces one)")
            if ids.shape != (h, w):
                return _skip(name, "size_mismatch", f"{found[t]} is {ids.shape[1]}x{ids.shape[0]} but frame "
                             f"{img_dir / frames[t]} is {w}x{h} (WxH)")
            maps.append(ids)
        if compiled:
            encoded = rle_utils.encode_id_maps(maps)
        else:
            # the previous chunk's stack is released only here, after this chunk's maps were decoded:
            # freeing it earlier makes the allocator return and re-fault those pages (~15% slower)
            stack = maps[0][None] if len(maps) == 1 else np.stack(maps)  # one big frame: a view, no copy
            encoded = rle_utils.encode_id_stack(stack)
        for t, items in zip(part, encoded):
            for tid, r, a, b in items:
                tr = tracks.get(tid)
                if tr is None:
                    tr = tracks[tid] = {"track_id": tid, "segmentations": [None] * length,
                                        "bboxes": [None] * length, "areas": [None] * length}
                tr["segmentations"][t], tr["bboxes"][t], tr["areas"][t] = r, b, a
    video = {"name": name, "file_names": [f"{name}/{f}" for f in frames], "height": h, "width": w, "length": length}
    track_list = [tracks[k] for k in sorted(tracks)]
    try:
        sidecar = track_sidecar.read_sidecar(mask_dir) if mask_dir.is_dir() else None
    except WsovvisError as e:
        return _skip(name, "bad_sidecar", str(e))
    if sidecar is not None:
        problem = track_sidecar.attach_to_tracks(track_list, sidecar, str(mask_dir))
        if problem:
            return _skip(name, "sidecar_mismatch", problem)
    return {"name": name, "video": video, "tracks": track_list, "naming": matched["naming"], "formats": formats,
            "num_masks": len(found), "categories": sidecar["categories"] if sidecar else None}


def _read_skip_list(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise WsovvisError(f"{path}: cannot read --skip_list ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise WsovvisError(f"{path}: --skip_list is not UTF-8 text") from e
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def list_videos(img_root: Path, mask_root: Path) -> list[str]:
    """Sorted union of the video subfolders of both roots (hidden folders ignored)."""
    for root, flag in ((img_root, "--img_root"), (mask_root, "--mask_root")):
        if not root.is_dir():
            raise WsovvisError(f"{root}: {flag} is not a folder")
    names = set()
    for root in (img_root, mask_root):
        names |= {e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")}
    if not names:
        raise WsovvisError(f"no video folders under {mask_root} or {img_root}")
    return sorted(names)


def default_skip_report(out_json: str | Path) -> Path:
    out = Path(out_json)
    return out.with_name((out.name[:-5] if out.name.endswith(".json") else out.name) + ".skipped.json")


def convert(
    mask_root: str | Path,
    img_root: str | Path,
    out_json: str | Path,
    *,
    split_name: str = "train",
    skip_list: list[str] | None = None,
    min_masks: int = 3,
    min_coverage: float = 0.2,
    skip_report: str | Path | None = None,
    workers: int = 1,
    id_format: str = "auto",
    ignore_value: int | None = None,
    category_id: int = 1,
    category_name: str = "object",
    progress: bool = True,
) -> dict:
    """Convert, write ``out_json`` (atomic, validated) and the skip report; return the report dict.

    The two outputs appear together: the old skip report is removed first, the JSON is replaced, and the
    new report (naming the JSON's sha256) is renamed into place last, so an interrupted run never leaves
    a report beside no JSON or beside another run's JSON. Raises `WsovvisError` if no video can be
    converted (the report is still written).
    """
    if id_format not in mask_io.ID_FORMATS:
        raise WsovvisError(f"unknown --id_format {id_format!r}; choose one of {', '.join(mask_io.ID_FORMATS)}")
    if min_masks < 0 or not 0 <= min_coverage <= 1:
        raise WsovvisError(f"--min_masks must be >= 0 and --min_coverage in [0, 1], got {min_masks}, {min_coverage}")
    if workers < 1:
        raise WsovvisError(f"--workers must be >= 1, got {workers}")
    mask_root, img_root = Path(mask_root), Path(img_root)
    skip_report = Path(skip_report) if skip_report else default_skip_report(out_json)
    names = list_videos(img_root, mask_root)
    skip_set = set(skip_list or [])
    todo = [n for n in names if n not in skip_set]
    opts = ConvertOptions(str(img_root), str(mask_root), min_masks, min_coverage, id_format, ignore_value)
    results = [_skip(n, "skip_list", "named in --skip_list") for n in names if n in skip_set]
    bar = tqdm(total=len(todo), desc="convert", unit="video", disable=not progress)
    if workers == 1 or len(todo) <= 1:
        for n in todo:
            results.append(convert_video(n, opts))
            bar.update()
    else:
        # Ctrl-C / SIGTERM stop the workers within seconds; workers die with this process
        with interruptible_pool(workers) as pool:
            chunk = max(1, min(16, len(todo) // (workers * 8)))
            for r in pool.imap(partial(convert_video, opts=opts), todo, chunksize=chunk):
                results.append(r)
                bar.update()
    bar.close()
    results.sort(key=lambda r: r["name"])
    kept = [r for r in results if "skip" not in r]
    skipped = [{"video": r["name"], "reason": r["skip"], "detail": r["detail"]} for r in results if "skip" in r]
    for s in skipped:
        log.debug("skipped %s: %s (%s)", s["video"], s["reason"], s["detail"])
    naming = Counter(r["naming"] for r in kept if r["naming"])
    formats: dict[str, str] = {}
    for r in kept:
        for fmt, why in r["formats"].items():
            formats.setdefault(fmt, why)
    for fmt, why in formats.items():
        log.info("id_format %s: %s", fmt, why)
    categories = track_sidecar.merge_categories(kept, category_id, category_name)
    videos, annotations = [], []
    for vid, r in enumerate(kept, 1):
        videos.append({"id": vid, **r["video"]})
        for tr in r["tracks"]:
            # a sidecar's category_id in ``tr`` replaces the default (same key position: same bytes without one)
            annotations.append({"id": len(annotations) + 1, "video_id": vid, "category_id": category_id,
                                "iscrowd": 0, **tr})
    unscored = [r["name"] for r in kept if r["categories"] is None]
    if unscored and len(unscored) < len(kept):
        log.warning("%d of %d videos have no %s beside their PNGs: their tracks carry no score (%s)", len(unscored),
                    len(kept), track_sidecar.SIDECAR_NAME, ", ".join(unscored[:5]))
    report = {
        "out_json": str(out_json),
        "mask_root": str(mask_root),
        "img_root": str(img_root),
        "split_name": split_name,
        "params": {"min_masks": min_masks, "min_coverage": min_coverage, "id_format": id_format,
                   "ignore_value": ignore_value, "skip_list": sorted(skip_set)},
        "counts": {
            "videos_found": len(names),
            "videos_converted": len(kept),
            "videos_skipped": len(skipped),
            "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
            "frames": sum(v["length"] for v in videos),
            "mask_pngs": sum(r["num_masks"] for r in kept),
            "tracks": len(annotations),
            "videos_without_tracks": sum(1 for r in kept if not r["tracks"]),
            "videos_with_track_scores": len(kept) - len(unscored),
        },
        "mask_naming": dict(naming),
        "id_formats": formats,
        "skip_list_not_found": sorted(skip_set - set(names)),
        "skip_reasons": {k: SKIP_REASONS[k] for k in sorted({s["reason"] for s in skipped})},
        "skipped": skipped,
    }
    out_json = Path(out_json)
    for p in (out_json, skip_report):  # temp files of an earlier, killed run of this job
        clean_stale_tmp(p.parent, p.name)
    skip_report.unlink(missing_ok=True)  # never an old report beside a new JSON
    if not kept:
        atomic_write_json(skip_report, report, indent=1)
        report["skip_report"] = str(skip_report)
        raise WsovvisError(f"no video converted: all {len(names)} skipped ({_reasons(report)}); "
                           f"see {skip_report}; {out_json} not written")
    data = {
        "info": {"description": f"wsovvis convert of {mask_root}", "split": split_name},
        "licenses": [],
        "videos": videos,
        "categories": categories,
        "annotations": annotations,
    }
    ytvis.write(data, out_json, check=False)  # built valid here; the tests validate it
    report["out_json_sha256"] = file_sha256(out_json)
    atomic_write_json(skip_report, report, indent=1)  # last: its presence marks a complete run
    report["skip_report"] = str(skip_report)
    return report


def _reasons(report: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in report["counts"]["skipped_by_reason"].items()) or "none"


def summary_line(report: dict) -> str:
    c = report["counts"]
    naming = ", ".join(f"{k}: {v}" for k, v in report["mask_naming"].items()) or "no masks"
    return (f"converted {c['videos_converted']}/{c['videos_found']} videos ({c['frames']} frames, "
            f"{c['mask_pngs']} mask PNGs [{naming}], {c['tracks']} tracks) -> {report['out_json']}; "
            f"skipped {c['videos_skipped']} ({_reasons(report)}) -> {report['skip_report']}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask_root", required=True, help="folder of <video>/ folders of id PNGs")
    p.add_argument("--img_root", required=True, help="folder of <video>/ folders of frames")
    p.add_argument("--out_json", required=True)
    p.add_argument("--split_name", default="train", help="recorded in the JSON info and the report")
    p.add_argument("--skip_list", help="file with one video name per line to leave out")
    p.add_argument("--min_masks", type=int, default=3, help="skip videos with fewer mask PNGs (default 3)")
    p.add_argument("--min_coverage", type=float, default=0.2,
                   help="skip videos whose #mask PNGs / #frames is below this (default 0.2)")
    p.add_argument("--skip_report", help="default: <out_json minus .json>.skipped.json")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--id_format", default="auto", choices=mask_io.ID_FORMATS)
    p.add_argument("--ignore_value", type=int, default=None, help="pixel value treated as background, e.g. 255")
    p.add_argument("--category_id", type=int, default=1)
    p.add_argument("--category_name", default="object")
    p.add_argument("--no_progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    report = convert(
        args.mask_root, args.img_root, args.out_json,
        split_name=args.split_name,
        skip_list=_read_skip_list(args.skip_list) if args.skip_list else None,
        min_masks=args.min_masks,
        min_coverage=args.min_coverage,
        skip_report=args.skip_report,
        workers=args.workers,
        id_format=args.id_format,
        ignore_value=args.ignore_value,
        category_id=args.category_id,
        category_name=args.category_name,
        progress=not args.no_progress,
    )
    print(summary_line(report))
    return 0
