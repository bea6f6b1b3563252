"""Contact sheets (and GIFs) of GT or predicted tubes: sampled frames in a grid, one colour per track, legend.

``render_contact_sheet`` draws one video from arrays and is what other parts call (pseudo-tube
benchmarks, the demo, evaluation during training). ``visualize_dataset`` draws every video of a
YouTube-VIS GT JSON or a results JSON (``[{video_id, category_id, score, segmentations}]``; the
frames then come from ``videos_json``).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from tqdm import tqdm

from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger
from wsovvis.viz.overlay import Tube, font, overlay_frame, write_gif, write_png

log = get_logger(__name__)

BG, FG, DIM = (28, 28, 32), (235, 235, 235), (150, 150, 150)


def sample_indices(length: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` frame indices spread evenly over ``length`` frames, first and last included."""
    if length <= max_frames:
        return list(range(length))
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, max_frames)})


def render_contact_sheet(
    frames: Sequence[np.ndarray | None],
    tubes: Sequence[Tube],
    *,
    frame_indices: Sequence[int] | None = None,
    frame_names: Sequence[str] | None = None,
    title: str = "",
    cols: int = 4,
    thumb_width: int = 256,
    alpha: float = 0.45,
) -> Image.Image:
    """One picture of a video's tubes.

    frames: the frames to show, each ``uint8 [H, W, 3]`` (None = missing, drawn as a grey tile).
    tubes: tracks whose ``masks`` are indexed by the original frame index (``len == video length``).
    frame_indices: original index of each shown frame (default ``0..len(frames)-1``).
    Tubes are drawn lowest score first so that confident ones are on top; the legend lists them
    best first with id, category, score and the number of frames where they are present.
    """
    if not frames:
        raise ValueError("render_contact_sheet needs at least one frame")
    idx = list(frame_indices) if frame_indices is not None else list(range(len(frames)))
    ref = next((f for f in frames if f is not None), None)
    if ref is None:
        first = next((m for tb in tubes for m in tb.masks if isinstance(m, dict)), None)
        h0, w0 = first["size"] if first else (9, 16)
    else:
        h0, w0 = ref.shape[:2]
    tw = thumb_width
    th = max(8, int(round(tw * h0 / w0)))
    order = sorted(tubes, key=lambda tb: (tb.score if tb.score is not None else 0.0, -tb.track_id))
    cols = max(1, min(cols, len(frames)))
    rows = math.ceil(len(frames) / cols)
    cap, pad, title_h = 16, 4, 26
    legend = sorted(tubes, key=lambda tb: (-(tb.score if tb.score is not None else 0.0), tb.track_id))
    per_row = max(1, (cols * (tw + pad)) // 280)
    entry_h = 20
    legend_h = (math.ceil(len(legend) / per_row) if legend else 1) * entry_h + 2 * pad
    width = cols * (tw + pad) + pad
    height = title_h + rows * (th + cap + pad) + pad + legend_h
    sheet = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(sheet)
    f = font(14)
    fs = font(11)
    draw.text((pad + 2, 5), title or "video", fill=FG, font=f)
    for k, (frame, t) in enumerate(zip(frames, idx)):
        r, c = divmod(k, cols)
        x, y = pad + c * (tw + pad), title_h + r * (th + cap + pad)
        tile = overlay_frame(frame, order, t, (th, tw), alpha=alpha)
        sheet.paste(tile, (x, y))
        name = f"  {frame_names[k]}" if frame_names is not None else ""
        draw.text((x + 2, y + th + 2), f"t={t}{name}", fill=DIM, font=fs)
    y0 = title_h + rows * (th + cap + pad) + pad
    if not legend:
        draw.text((pad + 2, y0 + 3), "no tracks", fill=DIM, font=f)
    col_w = (width - pad) // per_row
    for k, tb in enumerate(legend):
        r, c = divmod(k, per_row)
        x, y = pad + c * col_w, y0 + r * entry_h
        draw.rectangle([x, y + 3, x + 14, y + 17], fill=tb.rgb, outline=FG)
        n = tb.num_present()
        draw.text((x + 20, y + 3), f"{tb.label()}   [{n}/{len(tb.masks)} fr]", fill=FG, font=f)
    return sheet


def _load_frame(path: Path, hw: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """RGB frame resized to the video size ``hw`` if needed; (None, reason) when it cannot be read."""
    if not path.is_file():
        return None, "missing"
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.BILINEAR)
            return np.asarray(im), None
    except (UnidentifiedImageError, OSError) as e:
        return None, f"unreadable ({e})"


def _video_name(v: dict) -> str:
    return ytvis.video_name(v) or f"video_{v['id']}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def _results_tubes(results: list, ds: ytvis.YTVIS, source: str) -> dict[int, list[Tube]]:
    """Group a results list by video; entries are validated against ``ds`` with errors naming ``[i].key``."""
    by_video: dict[int, list[Tube]] = {}
    for i, r in enumerate(results):
        _, segs, score = ytvis.check_result(i, r, ds, source)
        cat = ds.cat_by_id.get(r.get("category_id"), {}).get("name", f"cat {r.get('category_id')}")
        by_video.setdefault(r["video_id"], []).append(Tube(0, segs, cat, score))
    for tubes in by_video.values():
        tubes.sort(key=lambda tb: -(tb.score or 0.0))
        for k, tb in enumerate(tubes, 1):
            tb.track_id = k  # rank by score: id 1 is the most confident prediction
    return by_video


def _gt_tubes(ds: ytvis.YTVIS) -> dict[int, list[Tube]]:
    """Tubes of a YouTube-VIS file; each is named by its ``track_id`` when it has one (converted tubes: the id
    the user sees in the mask PNGs), else by its annotation id."""
    out: dict[int, list[Tube]] = {}
    for a in ds.annotations:
        name = ds.cat_by_id.get(a["category_id"], {}).get("name", f"cat {a['category_id']}")
        tid = a.get("track_id")
        tid = tid if isinstance(tid, int) and not isinstance(tid, bool) else a["id"]
        out.setdefault(a["video_id"], []).append(Tube(tid, a["segmentations"], name, a.get("score")))
    return out


def file_stems(videos: list[dict]) -> dict[int, str]:
    """Video id -> output file stem: the sanitised name, with ``-<video id>`` added to every name that
    sanitises (or case-folds) like another one, so that no sheet overwrites another and re-runs agree."""
    stems = {v["id"]: _safe(_video_name(v)) for v in videos}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem.casefold()] = seen.get(stem.casefold(), 0) + 1
    return {vid: (f"{stem}-{vid}" if seen[stem.casefold()] > 1 else stem) for vid, stem in stems.items()}


def visualize_dataset(
    src: str | Path | dict | list,
    img_root: str | Path,
    out_dir: str | Path,
    *,
    videos_json: str | Path | dict | None = None,
    gif: bool = False,
    max_frames: int = 8,
    cols: int = 4,
    thumb_width: int = 256,
    score_threshold: float = 0.0,
    top_k: int = 20,
    videos: Sequence[str | int] | None = None,
    max_videos: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write ``<out_dir>/<video>.png`` (and ``.gif``) per video plus ``index.json``; return the PNG paths.

    src: GT JSON (tubes = annotations) or results list (tubes = predictions with score
    >= ``score_threshold``, best ``top_k`` per video; frames and categories from ``videos_json``).
    videos: restrict to these video names or ids.
    """
    source = str(src) if isinstance(src, (str, Path)) else "<memory>"
    data = read_json(src, "JSON to visualize") if isinstance(src, (str, Path)) else src
    if isinstance(data, list):
        if videos_json is None:
            raise WsovvisError(f"{source}: is a results list (no frame names); pass --videos_json (the GT or "
                               "images-only JSON of the same split)")
        ds = ytvis.load(videos_json)
        tubes = _results_tubes(data, ds, source)
        for vid, tbs in tubes.items():
            tbs = [tb for tb in tbs if tb.score is None or tb.score >= score_threshold][:top_k]
            for k, tb in enumerate(tbs, 1):
                tb.track_id = k
            tubes[vid] = tbs
        kind = "predicted"
    elif isinstance(data, dict):
        ds = ytvis.load(data, source=source)
        tubes = _gt_tubes(ds) if ds.has_annotations else {}
        kind = "annotated" if ds.has_annotations else "frames only"
    else:
        raise WsovvisError(f"{source}: expected a YouTube-VIS object or a results list, got {type(data).__name__}")
    img_root, out_dir = Path(img_root), Path(out_dir)
    if not img_root.is_dir():
        raise WsovvisError(f"{img_root}: --img_root is not a folder")
    chosen = ds.videos
    if videos:
        wanted = {str(x) for x in videos}
        chosen = [v for v in ds.videos if str(v["id"]) in wanted or _video_name(v) in wanted]
        unknown = wanted - {str(v["id"]) for v in chosen} - {_video_name(v) for v in chosen}
        if unknown:
            raise WsovvisError(f"{ds.source}: no video named or numbered {', '.join(sorted(unknown))}")
    if max_videos is not None:
        chosen = chosen[:max_videos]
    written, index = [], []
    missing_total = 0
    stems = file_stems(ds.videos)  # over all videos: a sheet's name does not depend on --videos
    for v in tqdm(chosen, desc="visualize", unit="video", disable=not progress):
        hw = (v["height"], v["width"])
        name = _video_name(v)
        length = ytvis.video_length(v)
        idx = sample_indices(length, max_frames)
        frames, missing = [], []
        for t in idx:
            arr, why = _load_frame(img_root / v["file_names"][t], hw)
            frames.append(arr)
            if why:
                missing.append(f"{v['file_names'][t]}: {why}")
        tbs = tubes.get(v["id"], [])
        title = f"{name}  (video {v['id']}, {length} frames, {len(tbs)} {kind} tracks)"
        sheet = render_contact_sheet(frames, tbs, frame_indices=idx, title=title, cols=cols, thumb_width=thumb_width,
                                     frame_names=[Path(v["file_names"][t]).name for t in idx])
        path = out_dir / f"{stems[v['id']]}.png"
        write_png(sheet, path)
        written.append(path)
        entry = {"video_id": v["id"], "name": name, "sheet": path.name, "tracks": len(tbs), "missing_frames": missing}
        if gif:
            tw = thumb_width
            th = max(8, int(round(tw * hw[0] / hw[1])))
            order = sorted(tbs, key=lambda tb: (tb.score or 0.0, -tb.track_id))
            gif_frames = []
            for t in range(length):
                arr, why = _load_frame(img_root / v["file_names"][t], hw)
                gif_frames.append(overlay_frame(arr, order, t, (th, tw)))
            write_gif(gif_frames, out_dir / f"{stems[v['id']]}.gif")
            entry["gif"] = f"{stems[v['id']]}.gif"
        if missing:
            missing_total += len(missing)
            log.warning("%s: %d frame(s) missing or unreadable, drawn grey: %s", name, len(missing), missing[0])
        index.append(entry)
    atomic_write_json(out_dir / "index.json", {"source": source, "kind": kind, "img_root": str(img_root),
                                               "videos": index}, indent=1)
    log.info("%d contact sheet(s)%s -> %s (%d missing frame(s))", len(written), " + GIFs" if gif else "",
             out_dir, missing_total)
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("json", help="YouTube-VIS GT JSON or results JSON (list)")
    p.add_argument("--img_root", required=True, help="frames folder (file_names are relative to it)")
    p.add_argument("--out", required=True, help="output folder for <video>.png / .gif and index.json")
    p.add_argument("--videos_json", "--gt", dest="videos_json",
                   help="for results: the JSON that lists the videos (frame names) and categories")
    p.add_argument("--gif", action="store_true", help="also write an animated GIF per video")
    p.add_argument("--max_frames", type=int, default=8, help="frames per contact sheet (evenly spaced)")
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--thumb_width", type=int, default=256)
    p.add_argument("--score_threshold", type=float, default=0.0, help="results only: drop lower scores")
    p.add_argument("--top_k", type=int, default=20, help="results only: best K tubes per video")
    p.add_argument("--videos", nargs="+", help="only these video names or ids")
    p.add_argument("--max_videos", type=int)
    p.add_argument("--no_progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    paths = visualize_dataset(
        args.json, args.img_root, args.out, videos_json=args.videos_json, gif=args.gif,
        max_frames=args.max_frames, cols=args.cols, thumb_width=args.thumb_width,
        score_threshold=args.score_threshold, top_k=args.top_k, videos=args.videos,
        max_videos=args.max_videos, progress=not args.no_progress,
    )
    print(f"wrote {len(paths)} contact sheet(s) to {args.out}")
    return 0
