"""A YouTube-VIS tube JSON (pseudo tubes, labels) as an evaluation results list.

``wsovvis eval --results tubes.json`` scores a converted pseudo-tube file directly: each track becomes one
result ``{video_id, category_id, score, segmentations}``. The two files number their videos independently,
so videos are matched by name (``name``, else the folder of the first ``file_names`` entry), and
categories by name; under ``class_agnostic`` every track counts whatever its category.
"""

from __future__ import annotations

from typing import Any

from wsovvis.data.ytvis import video_name
from wsovvis.errors import WsovvisError


def is_tube_json(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("videos"), list) and "annotations" in data


def tubes_to_results(data: dict, source: str, gt_videos: list[dict], gt_categories: list[dict],
                     class_agnostic: bool) -> tuple[list[dict], list[str]]:
    """-> (results, warnings). Tracks of videos that the GT lacks keep an id no GT video has (they are
    reported as unknown videos); categories that the GT lacks keep their id (dropped and counted)."""
    gt_by_name: dict[str, int] = {}
    for v in gt_videos:
        name = video_name(v)
        if name is not None:
            gt_by_name[name] = v["id"]
    if not gt_by_name:
        raise WsovvisError(f"{source}: a tube JSON is matched to the GT by video name, but the GT videos have no "
                           "'name' or folder in 'file_names'")
    if not isinstance(data["annotations"], list) or not all(isinstance(a, dict) for a in data["annotations"]):
        raise WsovvisError(f"{source}: 'annotations' must be a list of track objects")
    vid_map: dict[Any, int] = {}
    unmatched = []
    for i, v in enumerate(data["videos"]):
        name = video_name(v) if isinstance(v, dict) else None
        if name is None:
            raise WsovvisError(f"{source}: videos[{i}] has no 'name' or 'file_names' to match it to the GT by")
        if name in gt_by_name:
            vid_map[v.get("id")] = gt_by_name[name]
        else:
            unmatched.append(name)
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (f", ... ({len(unmatched)} in all)" if len(unmatched) > 10 else "")
        raise WsovvisError(f"{source}: {len(unmatched)} video(s) not in the GT (matched by name): {shown}")
    gt_cat_by_name = {str(c.get("name")): c["id"] for c in gt_categories}
    cat_name = {c.get("id"): str(c.get("name")) for c in data.get("categories") or [] if isinstance(c, dict)}
    any_gt_cat = min(c["id"] for c in gt_categories) if gt_categories else 0
    results, unscored = [], 0
    foreign: dict[str, int] = {}  # category name -> the negative id its tracks get
    for i, a in enumerate(data["annotations"]):
        if "segmentations" not in a or "video_id" not in a:
            raise WsovvisError(f"{source}: annotations[{i}] needs 'video_id' and 'segmentations'")
        if a["video_id"] not in vid_map:
            raise WsovvisError(f"{source}: annotations[{i}] refers to video id {a['video_id']!r}, not in its 'videos'")
        cid = a.get("category_id")
        if class_agnostic:
            cat = any_gt_cat
        elif cid in cat_name:
            # a named category the GT lacks must not borrow a GT id: an id no GT category has (dropped, counted)
            name = cat_name[cid]
            if name not in gt_cat_by_name:
                foreign.setdefault(name, -1 - len(foreign))
            cat = gt_cat_by_name.get(name, foreign.get(name))
        else:
            cat = cid
        score = a.get("score")
        if score is None:
            unscored += 1
            score = 1.0
        results.append({"video_id": vid_map[a["video_id"]], "category_id": cat, "score": score,
                        "segmentations": a["segmentations"]})
    warnings = []
    if foreign:
        warnings.append(f"{source}: categories not in the GT (by name), their tracks are dropped: "
                        + ", ".join(f"{n} (as id {i})" for n, i in list(foreign.items())[:10]))
    if unscored:
        warnings.append(
            f"{source}: {unscored} of {len(results)} tracks have no 'score' and rank as ties (score 1); "
            "convert pseudo tubes from a `wsovvis pseudo` output (its tracks.json carries the tube scores)")
    return results, warnings
