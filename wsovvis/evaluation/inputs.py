"""Load and check the two inputs of an evaluation: GT (with annotations) and a results list.

Everything the official evaluator would silently get wrong or crash on is turned into a `WsovvisError`
that names the file and the item; what it silently drops (results of categories that are not in the GT)
is dropped too, but with a warning and a count.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.evaluation import flat_results, kernel, tube_results
from wsovvis.evaluation.params import BASE_PARTITIONS, FLAVORS, NOVEL_PARTITIONS
from wsovvis.utils.io import read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

MAX_LISTED = 20
# Results dropped for a category the GT lacks: above this share it is an error (a wrong id mapping, not a subset)
MAX_DROP_SHARE = 0.05


@dataclass
class Video:
    id: int
    height: int
    width: int
    length: int


@dataclass
class GtTrack:
    """One GT object track. ``segs[t]``: compressed RLE ``{size, counts: str}``, or None when absent in frame t."""

    index: int  # position in the GT ``annotations`` list, for messages
    id: int
    category_id: int
    crowd: bool
    avg_area: float
    segs: list[dict | None]


@dataclass
class EvalInputs:
    """Checked inputs. ``dts_by_video[v]`` lists indices into ``results`` (file order), dropped ones excluded."""

    gt_source: str
    results_source: str
    flavor: str
    videos: list[Video]  # sorted by id
    cat_ids: list[int]  # sorted
    cat_names: dict[int, str]
    partitions: dict[int, int]  # lvvis only
    gts_by_video: dict[int, list[GtTrack]]
    results: Sequence[dict]  # a list, or `flat_results.FlatResults` (arrays; items built on demand)
    dts_by_video: dict[int, list[int]]
    num_dropped: int = 0
    warnings: list[str] = field(default_factory=list)


def avg_area(areas: list, flavor: str) -> float:
    """Mean of the truthy per-frame areas (null and 0 excluded; ``int()`` of each for LV-VIS), 0 if none."""
    vals = [int(a) for a in areas if a] if flavor == "lvvis" else [a for a in areas if a]
    if not vals:
        return 0.0
    total = sum(vals) if all(type(v) is int for v in vals) else None
    if total is not None and total < 2**53:
        # exact integer sum, one rounding: the float ``np.array(vals).mean()`` gives (the official arithmetic)
        return total / len(vals)
    return float(np.array(vals).mean())


def _fmt_list(items: list, limit: int = MAX_LISTED) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _gt_rle(seg: Any, h: int, w: int) -> dict | None:
    """GT frame -> compressed RLE with str counts (polygons and uncompressed RLE converted like ``annToRLE``)."""
    if not seg:  # null, or a polygon [] (falsy in the official code too)
        return None
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, *seg["size"])
    else:
        return seg
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def load_gt(gt: Any, flavor: str, use_kernel: bool = True) -> tuple[ytvis.YTVIS, dict]:
    """Load and validate the GT; returns the dataset and the parsed pieces used by `check_inputs`.
    ``use_kernel``: let the compiled kernel (when built) confirm that a track is compressed RLE already."""
    if flavor not in FLAVORS:
        raise WsovvisError(f"unknown evaluation flavor {flavor!r}; choose from {', '.join(FLAVORS)}")
    ds = ytvis.load(gt, require_annotations=True, what="ground-truth JSON")
    src = ds.source
    if not ds.annotations:
        raise WsovvisError(f"{src}: 'annotations' is empty; evaluation needs ground-truth tracks")
    videos = sorted(
        (Video(v["id"], v["height"], v["width"], ytvis.video_length(v)) for v in ds.videos), key=lambda v: v.id
    )
    vid_by_id = {v.id: v for v in videos}
    cat_names = {c["id"]: str(c.get("name", c["id"])) for c in ds.categories}
    partitions: dict[int, int] = {}
    if flavor == "lvvis":
        problems = []
        for i, c in enumerate(ds.categories):
            part = c.get("partition")
            if part not in BASE_PARTITIONS + NOVEL_PARTITIONS or isinstance(part, bool):
                problems.append(f"categories[{i}] (id {c['id']}): 'partition' is {part!r}, expected 0, 1, 2 or 3")
            else:
                partitions[c["id"]] = part
        if problems:
            raise WsovvisError(f"{src}: LV-VIS evaluation needs a base/novel partition per category:\n  "
                               + "\n  ".join(problems[:MAX_LISTED]))
    gts: dict[int, list[GtTrack]] = defaultdict(list)
    mod = kernel.load()[0] if use_kernel else None
    for i, a in enumerate(ds.annotations):
        v = vid_by_id[a["video_id"]]
        areas = a.get("areas")
        if not isinstance(areas, list):
            raise WsovvisError(
                f"{src}: annotations[{i}] (id {a['id']}) has no 'areas' list; the evaluation takes track areas "
                "from the GT JSON (as the official code does), so they must be present"
            )
        if mod is not None and mod.frames_ok(a["segmentations"], v.height, v.width):
            segs = list(a["segmentations"])  # null / compressed RLE with str counts: `_gt_rle` keeps them as they are
        else:
            segs = None
        try:
            segs = segs if segs is not None else [_gt_rle(s, v.height, v.width) for s in a["segmentations"]]
        except Exception as e:  # pycocotools raises plain TypeErrors/ValueErrors on malformed polygons
            raise WsovvisError(f"{src}: annotations[{i}] (id {a['id']}): cannot convert a segmentation: {e}") from e
        gts[v.id].append(
            GtTrack(i, a["id"], a["category_id"], bool(a.get("iscrowd", 0)), avg_area(areas, flavor), segs)
        )
    parsed = {"videos": videos, "cat_names": cat_names, "partitions": partitions, "gts": dict(gts)}
    return ds, parsed


def load_results(results: Any) -> tuple[list, str]:
    if isinstance(results, (str, os.PathLike)):
        data, source = read_json(results, "results JSON"), str(results)
    else:
        data, source = results, "<results>"
    if not isinstance(data, (list, dict)):
        raise WsovvisError(
            f"{source}: results must be a JSON list of {{video_id, category_id, score, segmentations}}, "
            f"got {type(data).__name__}"
        )
    return data, source


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_results(
    results: list, source: str, videos: list[Video], cat_ids: set[int], lenient: bool, use_kernel: bool = True
) -> tuple[dict[int, list[int]], int, list[str]]:
    """Validate every result; returns (kept indices by video, number dropped, warnings).

    Errors (raised together, up to `MAX_LISTED`): not an object, missing keys, non-integer ids, unknown
    video ids, non-finite scores, frames that are not compressed RLE or whose size is not the video's,
    and (unless ``lenient``) segmentation lists whose length is not the video length. ``use_kernel``: let the
    compiled kernel (when built) confirm the common case of valid frames faster; the verdict is the same.
    """
    dims_by_id = {v.id: (v.length, v.height, v.width) for v in videos}
    problems: list[str] = []
    unknown_videos: dict[Any, list[int]] = defaultdict(list)
    length_mismatch: list[str] = []
    dropped: dict[Any, int] = defaultdict(int)
    by_video: dict[int, list[int]] = defaultdict(list)

    def problem(msg: str) -> None:
        problems.append(msg)

    mod = kernel.load()[0] if use_kernel else None
    frames_ok = mod.frames_ok if mod is not None else None

    for i, r in enumerate(results):
        if len(problems) > MAX_LISTED:
            break
        # the common case first (plain JSON types), the detailed checks only when it does not hold
        try:
            vid, cat, score, segs = r["video_id"], r["category_id"], r["score"], r["segmentations"]
            plain = (type(r) is dict and type(vid) is int and type(cat) is int and type(score) is float
                     and math.isfinite(score))
        except (TypeError, KeyError, IndexError):
            plain = False
        if not plain:
            if not isinstance(r, dict):
                problem(f"result[{i}]: must be an object, got {type(r).__name__}")
                continue
            missing = [k for k in ("video_id", "category_id", "score", "segmentations") if k not in r]
            if missing:
                problem(f"result[{i}]: missing key{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}")
                continue
            vid, cat, score, segs = r["video_id"], r["category_id"], r["score"], r["segmentations"]
            if not _is_int(vid) or not _is_int(cat):
                problem(f"result[{i}]: video_id and category_id must be integers, got {vid!r} and {cat!r}")
                continue
            if (not isinstance(score, (int, float, np.integer, np.floating)) or isinstance(score, bool)
                    or not math.isfinite(score)):
                problem(f"result[{i}]: score must be a finite number, got {score!r}")
                continue
        dims = dims_by_id.get(vid)
        if dims is None:
            unknown_videos[vid].append(i)
            continue
        if not isinstance(segs, list):
            problem(f"result[{i}]: 'segmentations' must be a list with one RLE or null per frame")
            continue
        if cat not in cat_ids:
            dropped[cat] += 1
            continue
        length, height, width = dims
        if len(segs) != length:
            length_mismatch.append(f"result[{i}] has {len(segs)} frames, video {vid} has {length}")
        # the common case in one pass: compressed RLE dicts of the video's size, or null (the kernel's check
        # only ever says yes to a subset of what the Python expression accepts)
        if frames_ok is not None and frames_ok(segs, height, width):
            by_video[vid].append(i)
            continue
        if ytvis.segmentations_plainly_valid(segs, (height, width)):
            by_video[vid].append(i)
            continue
        hw = [height, width]
        for t, s in enumerate(segs):
            if s is None:
                continue
            if not isinstance(s, dict) or not isinstance(s.get("counts"), (str, bytes)):
                problem(
                    f"result[{i}].segmentations[{t}]: must be null or a compressed RLE "
                    f"{{'size': [H, W], 'counts': str}} (got {_describe(s)})"
                )
                break
            size = s.get("size")
            if not isinstance(size, (list, tuple)) or list(size) != hw:
                problem(f"result[{i}].segmentations[{t}]: RLE size {size!r} != video {vid} size [height, width] {hw}")
                break
        else:
            by_video[vid].append(i)
    if unknown_videos:
        ids = sorted(unknown_videos)
        first = min(i for v in ids for i in unknown_videos[v][:1])
        problems.insert(0, f"results for video ids not in the GT: {_fmt_list(ids)} (first at result[{first}])")
    if length_mismatch and not lenient:
        problems.append(
            f"{len(length_mismatch)} result(s) whose segmentation list length is not the video length: "
            f"{_fmt_list(length_mismatch, 5)}; pass --lenient (lenient=True) to reproduce the official zip "
            "truncation"
        )
    if problems:
        more = "\n  ... (stopped after the first problems)" if len(problems) > MAX_LISTED else ""
        raise WsovvisError(
            f"{source}: invalid results ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
            + "\n  ".join(problems[:MAX_LISTED]) + more
        )
    warnings = []
    if length_mismatch:
        warnings.append(
            f"{source}: {len(length_mismatch)} result(s) have a segmentation list length different from the video "
            f"length ({_fmt_list(length_mismatch, 3)}); --lenient: the IoU uses the zipped (shorter) frames"
        )
    num_dropped = sum(dropped.values())
    if num_dropped:
        warnings.append(dropped_warning(source, dropped))
    return dict(by_video), num_dropped, warnings


def dropped_warning(source: str, dropped: dict) -> str:
    """The warning for results dropped because the GT lacks their category (``dropped``: category -> count)."""
    return (f"{source}: dropped {sum(dropped.values())} result(s) whose category is not in the GT categories "
            f"(category ids {_fmt_list(sorted(dropped), 10)}), as the official evaluator does")


def _describe(v: Any) -> str:
    if isinstance(v, dict):
        c = v.get("counts")
        return f"counts of type {type(c).__name__}" if "counts" in v else f"object with keys {sorted(v)[:5]}"
    return type(v).__name__


def bad_rle_error(inp: EvalInputs, video: Video, gt: GtTrack | None, result_index: int | None,
                  t: int) -> WsovvisError:
    """The error for frame ``t`` of a GT track or of ``result[result_index]`` that is not valid compressed RLE."""
    what = f"malformed compressed RLE counts, or runs that do not add up to {video.height}x{video.width} pixels"
    if gt is not None:
        return WsovvisError(f"{inp.gt_source}: annotations[{gt.index}].segmentations[{t}] (video {video.id}): {what}")
    return WsovvisError(f"{inp.results_source}: result[{result_index}].segmentations[{t}] (video {video.id}): {what}")


def check_inputs(gt: Any, results: Any, flavor: str = "ytvis", lenient: bool = False,
                 use_kernel: bool = True, class_agnostic: bool = False, allow_drops: bool = False) -> EvalInputs:
    """Load GT and results (paths or loaded objects), check both and index the results by video.

    ``results`` may also be a YouTube-VIS tube JSON (see `wsovvis.evaluation.tube_results`). Dropping more
    than `MAX_DROP_SHARE` of the results (categories the GT lacks) is an error unless ``allow_drops``.
    """
    # a results file of the common shape is parsed by the kernel into arrays, in a thread while the GT loads
    flat_job = flat_results.start_reading(results) if use_kernel else None
    ds, parsed = load_gt(gt, flavor, use_kernel)
    cat_ids = sorted(parsed["cat_names"])
    flat = flat_job() if flat_job is not None else None
    checked = None
    if flat is not None:
        videos = parsed["videos"]
        checked = flat_results.check_flat(
            flat, str(results), np.array([v.id for v in videos], dtype=np.int64),
            np.array([(v.length, v.height, v.width) for v in videos], dtype=np.int64).reshape(-1, 3),
            np.array(cat_ids, dtype=np.int64), dropped_warning)
    warnings: list[str] = []
    if checked is not None:
        res, res_source = flat, str(results)
        by_video, num_dropped, more = checked
    else:  # the general path: any JSON, every check with its message
        del flat
        res, res_source = load_results(results)
        if tube_results.is_tube_json(res):
            res, warnings = tube_results.tubes_to_results(res, res_source, ds.videos, ds.categories,
                                                          class_agnostic)
        elif isinstance(res, dict):
            raise WsovvisError(f"{res_source}: results must be a JSON list of {{video_id, category_id, score, "
                               "segmentations}} or a YouTube-VIS tube JSON with 'videos' and 'annotations'")
        by_video, num_dropped, more = check_results(res, res_source, parsed["videos"], set(cat_ids), lenient,
                                                    use_kernel)
    warnings += more
    if num_dropped > MAX_DROP_SHARE * len(res) and not allow_drops:
        raise WsovvisError(
            f"{res_source}: {num_dropped} of {len(res)} results ({100 * num_dropped / len(res):.1f}%) have a "
            f"category that is not in the GT categories {_fmt_list(cat_ids, 10)}, so the evaluation would drop "
            "them; check that the results use the GT's category ids (a vocabulary maps names to them: `wsovvis "
            "vocab`), evaluate class-agnostic (--class_agnostic), or pass --allow_drops to drop them anyway"
        )
    if not res:
        warnings.append(f"{res_source}: the results list is empty; every defined stat is 0")
    elif len(by_video) < len(parsed["videos"]):
        missing = [v.id for v in parsed["videos"] if v.id not in by_video]
        warnings.append(
            f"{res_source}: the results cover {len(by_video)} of the {len(parsed['videos'])} GT videos; "
            f"{len(missing)} GT video(s) have no prediction (ids {_fmt_list(missing, 10)}) and count as missed"
        )
    for w in warnings:
        log.warning(w)
    return EvalInputs(
        gt_source=ds.source,
        results_source=res_source,
        flavor=flavor,
        videos=parsed["videos"],
        cat_ids=cat_ids,
        cat_names=parsed["cat_names"],
        partitions=parsed["partitions"],
        gts_by_video=parsed["gts"],
        results=res,
        dts_by_video=by_video,
        num_dropped=num_dropped,
        warnings=warnings,
    )
