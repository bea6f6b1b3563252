"""Structural validation of YouTube-VIS files (and the walk COCO validation shares).

`validate` collects every problem with its JSON path (``annotations[17].segmentations[3]``) so that one
run of ``wsovvis check`` lists them all; `wsovvis.data.ytvis` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wsovvis.data import rle as rle_utils

MAX_LISTED_PROBLEMS = 20


@dataclass
class Problem:
    """One validation finding: ``path`` is a JSON path such as ``annotations[3].areas[0]``."""

    path: str
    message: str
    severity: str = "error"  # "error" | "warning"
    kind: str = "structure"  # a short group name used by `wsovvis check` reports

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_NUM_TYPES = {int, float}
_INF = float("inf")
_isfinite = math.isfinite


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_ids(items: list, kind: str, problems: list[Problem]) -> dict[int, int]:
    """Map id -> index; report missing, non-integer and duplicate ids."""
    index: dict[int, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem(f"{kind}[{i}]", f"must be an object, got {type(item).__name__}"))
            continue
        if "id" not in item:
            problems.append(Problem(f"{kind}[{i}]", "missing required key 'id'"))
            continue
        vid = item["id"]
        if not _is_int(vid):
            problems.append(Problem(f"{kind}[{i}].id", f"must be an integer, got {vid!r}"))
            continue
        if vid in index:
            problems.append(
                Problem(f"{kind}[{i}].id", f"duplicate id {vid} (also {kind}[{index[vid]}])", kind="duplicate_id")
            )
            continue
        index[vid] = i
    return index


def check_size(p: str, item: dict, problems: list[Problem]) -> None:
    """``height`` and ``width`` of a video or an image (``p`` its JSON path): present, positive integers."""
    for key in ("height", "width"):
        if key not in item:
            problems.append(Problem(p, f"missing required key '{key}'"))
        elif not _is_int(item[key]) or item[key] <= 0:
            problems.append(Problem(f"{p}.{key}", f"must be a positive integer, got {item[key]!r}"))


def check_category_and_crowd(p: str, a: dict, cat_index: dict, problems: list[Problem]) -> None:
    """An annotation's (YouTube-VIS track or COCO instance, ``p`` its JSON path) ``category_id`` and ``iscrowd``."""
    if "category_id" not in a:
        problems.append(Problem(p, "missing required key 'category_id'"))
    elif a["category_id"] not in cat_index:
        problems.append(Problem(f"{p}.category_id", f"unknown category id {a['category_id']!r}", kind="unknown_id"))
    if "iscrowd" in a and a["iscrowd"] not in (0, 1):
        problems.append(Problem(f"{p}.iscrowd", f"must be 0 or 1, got {a['iscrowd']!r}"))


def _check_video(i: int, v: dict, problems: list[Problem]) -> None:
    p = f"videos[{i}]"
    check_size(p, v, problems)
    names = v.get("file_names")
    if names is None:
        problems.append(Problem(p, "missing required key 'file_names'"))
    elif not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append(Problem(f"{p}.file_names", "must be a list of strings"))
    else:
        for t, n in enumerate(names):
            if escapes_root(n):
                problems.append(Problem(f"{p}.file_names[{t}]", f"{n!r} leaves the image root (absolute path or "
                                        "'..'); file names are relative to it", kind="path_outside_root"))
                break
    length = v.get("length")
    if length is not None and (not _is_int(length) or length < 0):
        problems.append(Problem(f"{p}.length", f"must be a non-negative integer, got {length!r}"))
    elif isinstance(names, list) and _is_int(length) and length != len(names):
        problems.append(
            Problem(f"{p}.length", f"is {length} but file_names has {len(names)} entries", kind="length_mismatch")
        )


def escapes_root(name: str) -> bool:
    """True when a ``file_names`` entry is absolute or climbs out of the image root with ``..``."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    if ".." not in name:
        return False
    depth = 0
    for part in name.replace("\\", "/").split("/"):
        depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
        if depth < 0:
            return True
    return False


def video_length(video: dict) -> int:
    """Number of frames: ``length`` when present, else ``len(file_names)``."""
    if _is_int(video.get("length")):
        return video["length"]
    return len(video.get("file_names") or [])


def _check_segmentation(p: str, seg: Any, hw: tuple[int, int] | None, problems: list[Problem]) -> None:
    if seg is None:
        return
    if isinstance(seg, list):  # polygon: list of flat [x0, y0, x1, y1, ...] lists
        if not all(isinstance(poly, list) and len(poly) % 2 == 0 and all(_is_num(c) for c in poly) for poly in seg):
            problems.append(Problem(p, "polygon must be a list of flat [x0, y0, x1, y1, ...] coordinate lists"))
        return
    if not rle_utils.is_rle(seg):
        problems.append(Problem(p, "must be null, an RLE {'size': [H, W], 'counts': ...} or a polygon list"))
        return
    if hw is not None and list(seg["size"]) != list(hw):
        problems.append(
            Problem(p, f"RLE size {list(seg['size'])} != video size [height, width] {list(hw)}", kind="size_mismatch")
        )


def _check_annotation(
    i: int,
    a: dict,
    videos: list,
    video_index: dict[int, int],
    cat_index: dict[int, int],
    problems: list[Problem],
) -> None:
    p = f"annotations[{i}]"
    if a.get("id") == 0:
        problems.append(Problem(f"{p}.id", "must be non-zero (0 means 'unmatched' in evaluation)"))
    vid = a.get("video_id")
    video = None
    if "video_id" not in a:
        problems.append(Problem(p, "missing required key 'video_id'"))
    elif vid not in video_index:
        problems.append(Problem(f"{p}.video_id", f"unknown video id {vid!r}", kind="unknown_id"))
    else:
        video = videos[video_index[vid]]
    check_category_and_crowd(p, a, cat_index, problems)
    length = video_length(video) if video is not None else None
    hw = (video.get("height"), video.get("width")) if video is not None else None
    if hw is not None and not all(_is_int(x) for x in hw):
        hw = None
    segs = a.get("segmentations")
    if segs is None:
        problems.append(Problem(p, "missing required key 'segmentations'"))
    elif not isinstance(segs, list):
        problems.append(Problem(f"{p}.segmentations", "must be a list with one entry per frame"))
    else:
        if length is not None and len(segs) != length:
            problems.append(
                Problem(f"{p}.segmentations", f"has {len(segs)} entries but video {vid} has {length} frames",
                        kind="length_mismatch")
            )
        if not segmentations_plainly_valid(segs, hw):
            for t, seg in enumerate(segs):
                _check_segmentation(f"{p}.segmentations[{t}]", seg, hw, problems)
    for key, check, plainly_valid in (("areas", _check_area, _areas_plainly_valid),
                                      ("bboxes", _check_box, _boxes_plainly_valid)):
        vals = a.get(key)
        if vals is None:
            continue
        if not isinstance(vals, list):
            problems.append(Problem(f"{p}.{key}", "must be a list with one entry per frame"))
            continue
        if length is not None and len(vals) != length:
            problems.append(
                Problem(f"{p}.{key}", f"has {len(vals)} entries but video {vid} has {length} frames",
                        kind="length_mismatch")
            )
        if plainly_valid(vals):
            continue
        for t, val in enumerate(vals):
            if val is not None:
                check(f"{p}.{key}[{t}]", val, problems)


# Fast acceptance of the common case (compressed RLE of the video's size, plain numbers): one
# expression per track instead of a function call per frame, which dominated loading large GT
# files. Anything these reject goes through the per-frame checks, which name the exact problem.
def segmentations_plainly_valid(segs: list, hw: tuple[int, int] | None) -> bool:
    """True if every frame is null or a ``dict`` with ``str`` counts and ``size == [h, w]``; False means
    "look closer" (a per-frame check decides), never "invalid"."""
    if hw is None:
        return False
    size = list(hw)
    for s in segs:  # a loop, not all(<generator>): half the time on large GT files
        if s is not None and not (type(s) is dict and type(s.get("counts")) is str and s.get("size") == size):
            return False
    return True


def _areas_plainly_valid(vals: list) -> bool:
    # the chained comparison is False for NaN, and the upper bound rejects infinity
    num = _NUM_TYPES
    for v in vals:
        if v is not None and not (type(v) in num and 0 <= v < _INF):
            return False
    return True


def _boxes_plainly_valid(vals: list) -> bool:
    # A sum of the four numbers is finite when all are (NaN / inf propagate; an overflow only sends the
    # box to the per-frame check). An explicit loop: 3x faster than a set of element types per box.
    num = _NUM_TYPES
    for v in vals:
        if v is None:
            continue
        if type(v) is not list or len(v) != 4:
            return False
        x, y, w, h = v
        if not (type(x) in num and type(y) in num and type(w) in num and type(h) in num and _isfinite(x + y + w + h)):
            return False
    return True


def _check_area(p: str, v: Any, problems: list[Problem]) -> None:
    if _is_num(v) and not _isfinite(v):
        problems.append(Problem(p, f"must be a finite number, got {v!r}", kind="non_finite"))
    elif not _is_num(v) or v < 0:
        problems.append(Problem(p, f"must be null or a non-negative number, got {v!r}"))



def _check_box(p: str, v: Any, problems: list[Problem]) -> None:
    # set of element types: fast on the millions of boxes of a large dataset, and rejects bools
    if not (isinstance(v, list) and len(v) == 4 and {type(c) for c in v} <= _NUM_TYPES):
        problems.append(Problem(p, f"must be null or [x, y, w, h], got {v!r}"))
    elif not all(_isfinite(c) for c in v):
        problems.append(Problem(p, f"must hold finite numbers, got {v!r}", kind="non_finite"))


def _foreign_format_hint(data: dict) -> str | None:
    """A one-line diagnosis when the file is COCO / CocoVID (one annotation per frame), not YouTube-VIS."""
    anns = data.get("annotations")
    first = anns[0] if isinstance(anns, list) and anns and isinstance(anns[0], dict) else {}
    if "images" in data and "segmentation" in first and "segmentations" not in first:
        what = "CocoVID (mmtracking)" if "instance_id" in first or "videos" in data else "COCO (images)"
        return (f"this looks like a {what} file: one annotation per image/frame ('images', 'segmentation'), "
                "while YouTube-VIS has one track per object with per-frame 'segmentations' lists; "
                "group the per-frame annotations by instance into tracks first")
    return None


def validate(data: Any) -> list[Problem]:
    """Structural validation of a YouTube-VIS dict; returns every problem found (empty if valid)."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return [Problem("$", f"top level must be an object, got {type(data).__name__}")]
    hint = _foreign_format_hint(data)
    if hint:
        problems.append(Problem("$", hint, kind="format"))
    return validate_structure(data, "videos", _check_video, _check_annotation, problems)


def validate_structure(data: dict, items_key: str, check_item, check_annotation,
                       problems: list[Problem]) -> list[Problem]:
    """The walk YouTube-VIS (``items_key`` "videos") and COCO ("images") files share: the two top-level lists,
    unique ids, each item (``check_item(i, item, problems)``), category names, then each annotation
    (``check_annotation(i, ann, items, item_index, cat_index, problems)``). Appends to and returns ``problems``."""
    for key in (items_key, "categories"):
        if key not in data:
            problems.append(Problem("$", f"missing required key '{key}'"))
        elif not isinstance(data[key], list):
            problems.append(Problem(key, "must be a list"))
    if any(p.path == "$" and p.kind != "format" or p.path in (items_key, "categories") for p in problems):
        return problems
    items, cats = data[items_key], data["categories"]
    item_index = _check_ids(items, items_key, problems)
    cat_index = _check_ids(cats, "categories", problems)
    for i, v in enumerate(items):
        if isinstance(v, dict):
            check_item(i, v, problems)
    for i, c in enumerate(cats):
        if isinstance(c, dict) and not isinstance(c.get("name"), str):
            problems.append(Problem(f"categories[{i}]", "missing required string 'name'"))
    anns = data.get("annotations")
    if anns is not None:
        if not isinstance(anns, list):
            problems.append(Problem("annotations", "must be a list"))
        else:
            _check_ids(anns, "annotations", problems)
            for i, a in enumerate(anns):
                if isinstance(a, dict):
                    check_annotation(i, a, items, item_index, cat_index, problems)
    return problems


def format_problems(source: str, problems: list[Problem], limit: int = MAX_LISTED_PROBLEMS,
                    what: str = "YouTube-VIS JSON", more_hint: str = " (run `wsovvis check` for the full list)") -> str:
    lines = [f"{source}: invalid {what} ({len(problems)} problem{'s' * (len(problems) != 1)}):"]
    lines += [f"  {pr}" for pr in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more{more_hint}")
    return "\n".join(lines)
