"""The per-video track sidecar: what an id PNG cannot hold (each track's score and category).

Every pseudo-tube engine writes ``<out>/masks/<video>/tracks.json`` beside the video's id PNGs::

    {"video": "<name>",
     "tracks": [{"id": int, "score": float, "category_id": int | null, "category_name": str | null}, ...],
     "categories": [{"id": int, "name": str}, ...]}        # the categories the tracks name (may be empty)

``wsovvis convert`` reads it so that scores (and categories, for text-prompted engines) travel with the
tubes into the YouTube-VIS JSON. ``id`` is the pixel value of the track in the PNGs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json

SIDECAR_NAME = "tracks.json"


def sidecar_path(mask_dir: str | Path) -> Path:
    return Path(mask_dir) / SIDECAR_NAME


def write_sidecar(mask_dir: str | Path, video: str, tracks: list[dict[str, Any]],
                  categories: list[dict[str, Any]] | None = None) -> Path:
    """Write the sidecar atomically. ``tracks``: dicts with ``id``, ``score`` and optional category keys."""
    recs = []
    for t in sorted(tracks, key=lambda t: int(t["id"])):
        recs.append({"id": int(t["id"]), "score": float(t["score"]),
                     "category_id": None if t.get("category_id") is None else int(t["category_id"]),
                     "category_name": t.get("category_name")})
    cats = sorted(({"id": int(c["id"]), "name": str(c["name"])} for c in (categories or [])), key=lambda c: c["id"])
    path = sidecar_path(mask_dir)
    atomic_write_json(path, {"video": video, "tracks": recs, "categories": cats}, indent=1)
    return path


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_sidecar(mask_dir: str | Path) -> dict[str, Any] | None:
    """The checked sidecar of one video, or None when the folder has none.

    Returns ``{"tracks": {id: {"score", "category_id", "category_name"}}, "categories": {id: name}}``;
    a malformed file raises `WsovvisError` naming the file and the entry.
    """
    path = sidecar_path(mask_dir)
    if not path.is_file():
        return None
    data = read_json(path, "track sidecar")
    if not isinstance(data, dict) or not isinstance(data.get("tracks"), list):
        raise WsovvisError(f"{path}: a track sidecar must be an object with a 'tracks' list")
    cats: dict[int, str] = {}
    for i, c in enumerate(data.get("categories") or []):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            raise WsovvisError(f"{path}: categories[{i}] must be {{'id': int, 'name': str}}, got {c!r}")
        if cats.get(c["id"], c["name"]) != c["name"]:
            raise WsovvisError(f"{path}: category id {c['id']} is named both {cats[c['id']]!r} and {c['name']!r}")
        cats[c["id"]] = c["name"]
    tracks: dict[int, dict] = {}
    for i, t in enumerate(data["tracks"]):
        where = f"{path}: tracks[{i}]"
        if not isinstance(t, dict) or not _is_int(t.get("id")) or t["id"] <= 0:
            raise WsovvisError(f"{where}: needs a positive integer 'id' (the track's pixel value), got {t!r}")
        score = t.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise WsovvisError(f"{where} (id {t['id']}): 'score' must be a finite number, got {score!r}")
        cid = t.get("category_id")
        if cid is not None and (not _is_int(cid) or cid not in cats):
            raise WsovvisError(f"{where} (id {t['id']}): category_id {cid!r} is not in the sidecar's categories "
                               f"{sorted(cats)}")
        if t["id"] in tracks:
            raise WsovvisError(f"{where}: track id {t['id']} is listed twice")
        tracks[t["id"]] = {"score": float(score), "category_id": cid,
                           "category_name": cats.get(cid) if cid is not None else None}
    return {"tracks": tracks, "categories": cats}


def attach_to_tracks(tracks: list[dict[str, Any]], sidecar: dict[str, Any], where: str) -> str | None:
    """Copy each converted track's ``score`` (and ``category_id``) from a read sidecar, in place.

    ``tracks``: dicts with ``track_id`` (the PNG pixel value). Returns a problem description when a track in
    the PNGs is missing from the sidecar (the converter then skips the video), else None.
    """
    missing = [t["track_id"] for t in tracks if t["track_id"] not in sidecar["tracks"]]
    if missing:
        return (f"{where}: track id(s) {missing[:10]} appear in the mask PNGs but not in {SIDECAR_NAME} "
                f"(which lists {sorted(sidecar['tracks'])[:10]})")
    for t in tracks:
        rec = sidecar["tracks"][t["track_id"]]
        t["score"] = rec["score"]
        if rec["category_id"] is not None:
            t["category_id"] = rec["category_id"]
    return None


def merge_categories(converted: list[dict[str, Any]], default_id: int, default_name: str) -> list[dict[str, Any]]:
    """The JSON's category list over converted videos (``{"name", "tracks", "categories": {id: name} | None}``).

    Without named categories anywhere: the one default category (class-agnostic tubes). With them: their
    union, plus the default when some track has no category; one id with two names is an error.
    """
    names: dict[int, tuple[str, str]] = {}
    for r in converted:
        for cid, cname in (r.get("categories") or {}).items():
            if cid in names and names[cid][0] != cname:
                raise WsovvisError(f"category id {cid} is {names[cid][0]!r} in video {names[cid][1]} but {cname!r} "
                                   f"in video {r['name']} ({SIDECAR_NAME})")
            names.setdefault(cid, (cname, r["name"]))
    uses_default = not names or any("category_id" not in t for r in converted for t in r["tracks"])
    if uses_default:
        if default_id in names and names[default_id][0] != default_name:
            raise WsovvisError(f"--category_id {default_id} ({default_name!r}, for tracks without a category) is "
                               f"already category {names[default_id][0]!r} in {SIDECAR_NAME} of video "
                               f"{names[default_id][1]}; pass another --category_id")
        names.setdefault(default_id, (default_name, ""))
    return [{"id": cid, "name": n, "supercategory": n} for cid, (n, _) in sorted(names.items())]
