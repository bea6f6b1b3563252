"""The sharded, resumable pseudo-tube runner.

Output layout under ``out``::

    masks/<video>/mask_<frame stem>.png        id PNGs (0 = background), atomic writes
    masks/<video>/tracks.json                  each track's score (and category), `wsovvis.data.track_sidecar`
    manifest/shard_<i>_of_<n>.jsonl            one JSON line per video of shard i (rewritten atomically)
    params.json                                the parameters the tubes were made with (`check_provenance`)
    masks/.<video>.partial/                    a video being written (renamed to masks/<video> when complete)

A manifest line is ``{"video", "status": "done" | "failed", ...}``; ``done`` lines list the frame
stems and the tubes (``id``, ``score``, ``frames``, ``first``, ``last``, ``mean_area``), ``failed``
lines carry the error and its traceback. A video counts as finished when any manifest has it
``done`` and all its PNGs and its ``tracks.json`` exist; everything else (never started, half-written,
failed) is redone, so killing a run at any moment and starting it again gives the same PNGs as one clean run.

Shard ``i`` of ``n`` takes ``sorted(videos)[i::n]``: the shards cover every video exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from wsovvis.data.masks import write_ids
from wsovvis.data.track_sidecar import sidecar_path, write_sidecar
from wsovvis.errors import WsovvisError
from wsovvis.pseudo.frames import list_videos, load_video
from wsovvis.utils.io import atomic_write_json, atomic_write_text, clean_stale_tmp, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def shard(videos: list[str], index: int, num: int) -> list[str]:
    """Videos of shard ``index`` of ``num`` (round robin over the sorted list)."""
    if num < 1 or not 0 <= index < num:
        raise WsovvisError(f"--shard_index must be in 0..{num - 1} and --num_shards >= 1, got {index} of {num}")
    return sorted(videos)[index::num]


def manifest_path(out: Path, index: int, num: int) -> Path:
    return Path(out) / "manifest" / f"shard_{index:03d}_of_{num:03d}.jsonl"


def png_path(out: Path, video: str, stem: str) -> Path:
    return Path(out) / "masks" / video / f"mask_{stem}.png"


def read_manifest(path: Path) -> dict[str, dict]:
    """video -> entry of one manifest file; a torn or foreign line is reported and ignored."""
    entries: dict[str, dict] = {}
    if not path.is_file():
        return entries
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            entries[e["video"]] = e
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("%s line %d: not a manifest entry, ignored", path, n)
    return entries


def read_manifests(out: Path) -> dict[str, dict]:
    """video -> entry over every manifest under ``out`` (a ``done`` entry wins over others)."""
    merged: dict[str, dict] = {}
    for p in sorted((Path(out) / "manifest").glob("*.jsonl")):
        for v, e in read_manifest(p).items():
            if v not in merged or (e.get("status") == "done" and merged[v].get("status") != "done"):
                merged[v] = e
    return merged


def is_finished(out: Path, entry: dict | None) -> bool:
    if not entry or entry.get("status") != "done":
        return False
    # the sidecar is written after the PNGs, so it also marks a video whose PNGs are all there
    return sidecar_path(Path(out) / "masks" / entry["video"]).is_file() and all(
        png_path(out, entry["video"], s).is_file() for s in entry.get("stems", []))


def tube_records(tubes, num_frames: int) -> list[dict[str, Any]]:
    recs = []
    for tb in sorted(tubes, key=lambda x: x.tube_id):
        fr = tb.frames
        recs.append({"id": int(tb.tube_id), "score": round(float(tb.score), 6), "frames": len(fr),
                     "first": int(fr[0]), "last": int(fr[-1]),
                     "mean_area": round(float(np.mean([tb.masks[t].mean() for t in fr])), 6)})
    return recs


def write_track_sidecar(mask_dir: Path, name: str, tubes, categories: list[dict] | None = None) -> None:
    """``tracks.json`` beside the PNGs: each tube's score, and its category when the engine names one
    (tubes with ``category_id`` / ``category_name`` attributes, e.g. the text-prompted engine)."""
    tracks, named = [], {}
    for tb in tubes:
        cid, cname = getattr(tb, "category_id", None), getattr(tb, "category_name", None)
        if cid is not None:
            named[int(cid)] = str(cname if cname is not None else cid)
        tracks.append({"id": int(tb.tube_id), "score": round(float(tb.score), 6), "category_id": cid,
                       "category_name": cname})
    cats = list(categories) if categories else [{"id": k, "name": v} for k, v in sorted(named.items())]
    mask_dir.mkdir(parents=True, exist_ok=True)
    write_sidecar(mask_dir, name, tracks, cats)


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tubes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        n = list(self.tubes.values())
        tubes = (f"; tubes per video: mean {np.mean(n):.2f}, min {min(n)}, max {max(n)}, "
                 f"{sum(1 for k in n if k == 0)} video(s) with none") if n else ""
        return (f"{len(self.done)} done, {len(self.skipped)} skipped (already finished), "
                f"{len(self.failed)} failed{tubes}")


PARAMS_NAME = "params.json"


def check_provenance(out: str | Path, params: dict[str, Any], overwrite: bool = False) -> None:
    """Record ``params`` in ``<out>/params.json``, or refuse an ``out`` made with other parameters.

    Resuming into an ``out`` whose recorded parameters differ (or that holds outputs but no record)
    would keep the old masks as "already finished"; that is an error naming the differing keys unless
    ``overwrite``, which deletes ``masks/`` and ``manifest/`` and starts again. A record without any
    manifest (a run that stopped before its first video) is simply replaced.
    """
    out = Path(out)
    path = out / PARAMS_NAME
    has_outputs = any((out / "manifest").glob("*.jsonl"))
    old: dict | None = None
    if path.is_file() and has_outputs:
        old = read_json(path, "pseudo parameters record")
        if old == params:
            return
        keys = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k)) if isinstance(old, dict) else []
        what = "; ".join(f"{k}: recorded {old.get(k)!r}, now {params.get(k)!r}" for k in keys[:8]) or "unreadable"
        problem = f"{path}: {out} holds pseudo tubes made with other parameters ({what})"
    elif has_outputs:
        problem = f"{out}: holds pseudo tubes with no {PARAMS_NAME} record of their parameters"
    else:
        problem = None
    if problem:
        if not overwrite:
            raise WsovvisError(f"{problem}; pass --overwrite to delete them and start again, or choose another --out")
        log.warning("%s; --overwrite: deleting %s and %s", problem, out / "masks", out / "manifest")
        for sub in ("masks", "manifest"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, params, indent=1)


def staging_dir(out: Path, name: str) -> Path:
    """Where a video's PNGs are written before they replace ``masks/<video>`` (hidden: converters skip it)."""
    return Path(out) / "masks" / f".{name}.partial"


def _publish(staging: Path, final: Path) -> None:
    """Replace ``final`` by the complete ``staging`` folder: a video's masks appear all at once."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def process_video(engine, img_root: Path, out: Path, name: str) -> dict[str, Any]:
    """Run ``engine`` on one video and write its PNGs; -> its ``done`` manifest entry.

    The PNGs and ``tracks.json`` go to `staging_dir` first and replace ``masks/<video>`` in one rename,
    so an interrupted run (even SIGKILL) never leaves a video with part of its masks.
    """
    from wsovvis.pseudo.cleanup import paint_ids  # here: it pulls in scipy, which a parent of workers never needs

    t0 = time.perf_counter()
    short_side, multiple, max_long = engine.frame_spec
    video = load_video(img_root, name, short_side, multiple, max_long)
    result = engine(video)
    staging = staging_dir(out, name)
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's leftovers
    for t, stem in enumerate(video.stems):
        write_ids(staging / png_path(out, name, stem).name, paint_ids(result.tubes, t, video.size))
    write_track_sidecar(staging, name, result.tubes, getattr(engine, "categories", None))
    _publish(staging, Path(out) / "masks" / name)
    return {"video": name, "status": "done", "engine": engine.name, "num_frames": len(video),
            "size": list(video.size), "stems": video.stems, "tubes": tube_records(result.tubes, len(video)),
            "notes": list(result.notes), "stats": result.stats, "seconds": round(time.perf_counter() - t0, 3)}


def run_shard(engine, img_root: str | Path, out: str | Path, index: int = 0, num: int = 1,
              progress: bool = True) -> Summary:
    """Process shard ``index`` of ``num``; failures are recorded per video and the run goes on."""
    img_root, out = Path(img_root), Path(out)
    mine = shard(list_videos(img_root), index, num)
    mpath = manifest_path(out, index, num)
    clean_stale_tmp(mpath.parent, mpath.name)  # a killed run's half-written manifest
    own = read_manifest(mpath)
    everywhere = read_manifests(out)
    summary = Summary()
    log.info("shard %d/%d: %d of the videos under %s -> %s", index, num, len(mine), img_root, out)
    bar = tqdm(mine, desc=f"pseudo {index}/{num}", unit="video", disable=not progress)
    for name in bar:
        if is_finished(out, everywhere.get(name)):
            summary.skipped.append(name)
            summary.tubes[name] = len(everywhere[name].get("tubes", []))
            continue
        try:
            entry = process_video(engine, img_root, out, name)
            summary.done.append(name)
            summary.tubes[name] = len(entry["tubes"])
            for note in entry["notes"]:
                log.info("%s: %s", name, note)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one bad video must not stop the shard
            entry = {"video": name, "status": "failed", "engine": getattr(engine, "name", "?"),
                     "error": f"{type(e).__name__}: {e}" if not isinstance(e, WsovvisError) else str(e),
                     "traceback": traceback.format_exc()}
            summary.failed.append(name)
            log.warning("%s failed: %s", name, entry["error"])
            # No partial output for a failed video: the converter reads mask folders directly.
            for png in (out / "masks" / name).glob("mask_*.png"):
                png.unlink(missing_ok=True)
            sidecar_path(out / "masks" / name).unlink(missing_ok=True)
            shutil.rmtree(staging_dir(out, name), ignore_errors=True)
        own[name] = entry
        atomic_write_text(mpath, "".join(json.dumps(own[v]) + "\n" for v in sorted(own)))
        bar.set_postfix(done=len(summary.done), failed=len(summary.failed))
    log.info("shard %d/%d: %s", index, num, summary.line())
    return summary


def summarize(out: Path, videos: list[str]) -> Summary:
    """Summary of ``videos`` from the manifests (for a parent process over several workers)."""
    entries = read_manifests(out)
    s = Summary()
    for v in videos:
        e = entries.get(v)
        if is_finished(out, e):
            s.done.append(v)
            s.tubes[v] = len(e.get("tubes", []))
        elif e and e.get("status") == "failed":
            s.failed.append(v)
    return s
