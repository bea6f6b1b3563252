"""The Review tab's logic: open a YouTube-VIS JSON with its frames, decide per tube, save a curated copy.

Everything here is plain Python (no Gradio) so that it is unit-tested without a browser.

A `ReviewSession` holds the opened dataset as a YouTube-VIS dict whose annotations are the tubes
under review. A results list (``[{video_id, category_id, score, segmentations}]``, i.e. model
predictions) is opened together with the JSON that lists its videos and categories and becomes
such a dict (tube id = 1 + its index in the list). Each tube is "undecided", "accepted" or
"rejected" and may be renamed to another category name. `save_curated` writes the kept tubes as
a YouTube-VIS JSON next to the input (never over it), validated by `wsovvis.data.ytvis.write`,
so the result passes `wsovvis check`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import read_json

UNDECIDED, ACCEPTED, REJECTED = "undecided", "accepted", "rejected"
DECISIONS = (UNDECIDED, ACCEPTED, REJECTED)
FRAME_PROBE = 3  # frames per video looked up when a session opens (first, middle, last)


@dataclass
class ReviewSession:
    """An opened dataset under review.

    data: YouTube-VIS dict (videos, categories, annotations = the tubes); never the caller's object.
    source: the file it came from (the curated copy is written next to it).
    frame_root: folder that ``file_names`` are relative to.
    decisions: tube id -> one of `DECISIONS` (missing = undecided).
    renames: tube id -> new category name.
    notes: warnings found while opening (missing frames, size mismatches), shown in the page.
    """

    data: dict
    source: Path
    frame_root: Path
    kind: str  # "tubes" (a YouTube-VIS file with annotations) or "predictions" (a results list)
    decisions: dict[int, str] = field(default_factory=dict)
    renames: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ds = ytvis.load(self.data, validate_json=False, source=str(self.source))

    def video(self, video_id: int) -> dict:
        v = self.ds.video_by_id.get(video_id)
        if v is None:
            raise WsovvisError(f"{self.source}: no video with id {video_id!r}")
        return v

    def tubes(self, video_id: int) -> list[dict]:
        return self.ds.anns_by_video.get(video_id, [])

    def category_name(self, tube: dict) -> str:
        if tube["id"] in self.renames:
            return self.renames[tube["id"]]
        return self.ds.cat_by_id.get(tube["category_id"], {}).get("name", f"cat {tube['category_id']}")

    def decision(self, tube_id: int) -> str:
        return self.decisions.get(tube_id, UNDECIDED)


def video_label(v: dict) -> str:
    """Display name of a video: its ``name``, else the folder of its first frame, else ``video_<id>``."""
    return ytvis.video_name(v) or f"video_{v['id']}"


def _results_as_dataset(results: list, videos_json: Path, source: Path) -> dict:
    """A results list + the JSON of its videos -> a YouTube-VIS dict with one annotation per prediction."""
    ds = ytvis.load(videos_json, what="videos JSON")
    anns = []
    for i, r in enumerate(results):
        _, segs, score = ytvis.check_result(i, r, ds, str(source), require_category=True)
        anns.append({"id": i + 1, "video_id": r["video_id"], "category_id": r["category_id"], "iscrowd": 0,
                     "score": score, "segmentations": segs})
    return {"videos": ds.videos, "categories": ds.categories, "annotations": anns}


def _probe_frames(data: dict, frame_root: Path, source: Path) -> list[str]:
    """Look up a few frames per video; raise when none is found, return notes for partial problems."""
    if not frame_root.is_dir():
        raise WsovvisError(f"{frame_root}: the frame folder does not exist (file_names in {source} are relative "
                           "to it)")
    probed = found = 0
    missing: list[str] = []
    size_notes: list[str] = []
    for v in data["videos"]:
        names = v.get("file_names") or []
        for t in sorted({0, len(names) // 2, len(names) - 1} & set(range(len(names))))[:FRAME_PROBE]:
            probed += 1
            path = frame_root / names[t]
            if not path.is_file():
                missing.append(names[t])
                continue
            found += 1
            if t == 0:
                try:
                    with Image.open(path) as im:
                        w, h = im.size
                except (UnidentifiedImageError, OSError):
                    missing.append(f"{names[t]} (unreadable)")
                    continue
                if (h, w) != (v.get("height"), v.get("width")):
                    size_notes.append(f"{video_label(v)}: frames are {h}x{w}, the JSON says "
                                      f"{v.get('height')}x{v.get('width')}")
    if probed and not found:
        raise WsovvisError(f"{frame_root}: does not match {source}: none of {probed} looked-up frames exists "
                           f"(e.g. {frame_root / missing[0]}); pick the folder that file_names are relative to")
    notes = []
    if missing:
        notes.append(f"{len(missing)} of {probed} looked-up frames are missing or unreadable under {frame_root} "
                     f"(e.g. {missing[0]}); they are drawn grey")
    if size_notes:
        notes.append(f"{len(size_notes)} video(s) whose frames differ in size from the JSON (resized for display), "
                     f"e.g. {size_notes[0]}")
    return notes


def open_review(json_path: str | Path, frame_root: str | Path, videos_json: str | Path | None = None) -> ReviewSession:
    """Open a YouTube-VIS JSON (tubes/labels) or a results list (+ ``videos_json``) with its frame folder.

    Raises `WsovvisError` naming the file for anything that cannot be reviewed: not JSON, not
    YouTube-VIS, no annotations to review, a frame folder where none of the looked-up frames exists.
    """
    if not str(json_path).strip():
        raise WsovvisError("no JSON given: choose a YouTube-VIS JSON (tubes, labels or predictions)")
    if not str(frame_root).strip():
        raise WsovvisError("no frame folder given: the folder that the JSON's file_names are relative to")
    source, frame_root = Path(json_path), Path(frame_root)
    raw = read_json(source, "JSON to review")
    if isinstance(raw, list):
        if not videos_json or not str(videos_json).strip():
            raise WsovvisError(f"{source}: is a results list (predictions without frame names); also give the "
                               "videos JSON (the GT or images-only JSON of the same split)")
        data, kind = _results_as_dataset(raw, Path(videos_json), source), "predictions"
        ytvis.load(data, source=str(source))  # the assembled dict must itself be valid
    elif isinstance(raw, dict):
        ds = ytvis.load(raw, source=str(source))
        if not ds.has_annotations:
            raise WsovvisError(f"{source}: has no 'annotations' (an images-only JSON): there are no tubes to review")
        data, kind = raw, "tubes"  # freshly parsed: nobody else holds it
    else:
        raise WsovvisError(f"{source}: is not YouTube-VIS: expected an object with videos/categories/annotations "
                           f"or a results list, got {type(raw).__name__}")
    if not data["videos"]:
        raise WsovvisError(f"{source}: lists no videos; there is nothing to review")
    notes = _probe_frames(data, frame_root, source)
    return ReviewSession(data=data, source=source, frame_root=frame_root, kind=kind, notes=notes)


def video_choices(s: ReviewSession) -> list[tuple[str, int]]:
    """(label, video id) per video: name, frame count, tube count, and how many tubes are decided."""
    out = []
    for v in s.ds.videos:
        tubes = s.tubes(v["id"])
        decided = sum(1 for a in tubes if s.decision(a["id"]) != UNDECIDED)
        out.append((f"{video_label(v)}  ({ytvis.video_length(v)} fr, {len(tubes)} tubes, {decided} decided)",
                    v["id"]))
    return out


def present_span(segs: list) -> str:
    """Frames where the tube is present (entry not None), as compact ranges: ``0-3, 6``."""
    idx = [t for t, m in enumerate(segs) if m is not None]
    parts, start = [], None
    for k, t in enumerate(idx):
        if start is None:
            start = t
        if k + 1 == len(idx) or idx[k + 1] != t + 1:
            parts.append(f"{start}" if start == t else f"{start}-{t}")
            start = None
    return ", ".join(parts) or "none"


TUBE_COLUMNS = ["tube", "category", "score", "frames", "present in", "decision"]


def tube_rows(s: ReviewSession, video_id: int) -> list[list]:
    """One row per tube of the video, columns `TUBE_COLUMNS`; best score first."""
    v = s.video(video_id)
    length = ytvis.video_length(v)
    rows = []
    for a in sorted(s.tubes(video_id), key=lambda a: (-(a.get("score") or 0.0), a["id"])):
        segs = a.get("segmentations") or []
        n = sum(1 for m in segs if m is not None)
        score = a.get("score")
        rows.append([a["id"], s.category_name(a), "" if score is None else round(float(score), 3),
                     f"{n}/{length}", present_span(segs), s.decision(a["id"])])
    return rows


def tube_choices(s: ReviewSession, video_id: int) -> list[tuple[str, int]]:
    """(label, tube id) for the tube picker: ``#id category score``."""
    out = []
    for row in tube_rows(s, video_id):
        score = f" {row[2]:.2f}" if row[2] != "" else ""
        out.append((f"#{row[0]} {row[1]}{score} [{row[5]}]", row[0]))
    return out


def _check_tubes(s: ReviewSession, tube_ids: list[int]) -> list[int]:
    known = {a["id"] for a in s.ds.annotations}
    ids = [int(t) for t in tube_ids]
    if not ids:
        raise WsovvisError("no tube selected: tick one or more tubes first")
    unknown = [t for t in ids if t not in known]
    if unknown:
        raise WsovvisError(f"{s.source}: no tube with id {unknown[0]}")
    return ids


def decide(s: ReviewSession, tube_ids: list[int], decision: str) -> None:
    """Set the decision of the given tubes (``accepted`` / ``rejected`` / ``undecided``)."""
    if decision not in DECISIONS:
        raise WsovvisError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    for t in _check_tubes(s, tube_ids):
        s.decisions[t] = decision


def rename(s: ReviewSession, tube_ids: list[int], name: str) -> None:
    """Give the tubes another category name (an existing category or a new one, created on save)."""
    name = (name or "").strip()
    if not name:
        raise WsovvisError("rename: type the new category name first")
    for t in _check_tubes(s, tube_ids):
        s.renames[t] = name


def curated_dataset(s: ReviewSession, keep_undecided: bool = True) -> tuple[dict, dict[str, int]]:
    """The dataset with rejected tubes dropped (and undecided ones unless ``keep_undecided``) and renames applied.

    A rename to a name that no category has adds a category (next free id). Predictions get their
    per-frame ``areas`` and ``bboxes`` computed from the masks. Returns (dict, counts).
    """
    data = {k: v for k, v in s.data.items() if k != "annotations"}
    cats = [dict(c) for c in s.ds.categories]
    by_name = {c["name"]: c["id"] for c in cats}
    next_id = max((c["id"] for c in cats), default=0) + 1
    anns, counts = [], {ACCEPTED: 0, REJECTED: 0, UNDECIDED: 0, "renamed": 0, "kept": 0}
    for a in s.ds.annotations:
        d = s.decision(a["id"])
        counts[d] += 1
        if d == REJECTED or (d == UNDECIDED and not keep_undecided):
            continue
        a = dict(a)
        if a["id"] in s.renames:
            name = s.renames[a["id"]]
            if name not in by_name:
                cats.append({"id": next_id, "name": name})
                by_name[name], next_id = next_id, next_id + 1
            if by_name[name] != a["category_id"]:
                counts["renamed"] += 1
            a["category_id"] = by_name[name]
        if "areas" not in a or "bboxes" not in a:
            present = [m for m in a["segmentations"] if m is not None]
            areas, boxes = rle_utils.areas_and_boxes(present)
            it_a, it_b = iter(areas), iter(boxes)
            a["areas"] = [None if m is None else next(it_a) for m in a["segmentations"]]
            a["bboxes"] = [None if m is None else next(it_b) for m in a["segmentations"]]
        anns.append(a)
        counts["kept"] += 1
    data["categories"] = cats
    data["annotations"] = anns
    return data, counts


def curated_path(source: Path, out_dir: Path | None = None) -> Path:
    """``<stem>.curated.json`` beside the input (or in ``out_dir``), numbered so that no file is overwritten."""
    folder = out_dir or source.parent
    stem = source.name[:-5] if source.name.endswith(".json") else source.name
    path = folder / f"{stem}.curated.json"
    k = 2
    while path.exists() or path == source:
        path = folder / f"{stem}.curated-{k}.json"
        k += 1
    return path


def _writable(folder: Path) -> bool:
    """Writable for us AND not marked read-only (no write bit at all), which root would otherwise ignore."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def save_curated(s: ReviewSession, keep_undecided: bool = True, fallback_dir: Path | None = None) -> tuple[Path, str]:
    """Write the curated JSON atomically next to the input (``fallback_dir`` when that folder is not writable).

    A folder without any write bit (a read-only data set) counts as not writable even for root.
    Returns (path, one-line summary). The input file is never overwritten.
    """
    data, counts = curated_dataset(s, keep_undecided)
    path = curated_path(s.source)
    try:
        if not _writable(path.parent):
            raise PermissionError(path.parent)
        ytvis.write(data, path)
    except PermissionError:
        if fallback_dir is None:
            raise WsovvisError(f"{path.parent}: not writable; cannot save the curated JSON there") from None
        path = curated_path(s.source, fallback_dir)
        ytvis.write(data, path)
        elsewhere = f"; {s.source.parent} is not writable, so it went to the session folder (download it below)"
    else:
        elsewhere = ""
    summary = (f"saved {counts['kept']} tubes to {path} ({counts[ACCEPTED]} accepted, {counts[REJECTED]} rejected, "
               f"{counts[UNDECIDED]} undecided {'kept' if keep_undecided else 'dropped'}, "
               f"{counts['renamed']} renamed){elsewhere}")
    return path, summary
