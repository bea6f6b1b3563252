"""Review tab pictures: the contact sheet and GIF of one video in its current review state."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsovvis.app.review import REJECTED, ReviewSession, video_label
from wsovvis.data import ytvis
from wsovvis.viz.contact_sheet import render_contact_sheet, sample_indices
from wsovvis.viz.overlay import Tube, overlay_frame, write_gif, write_png


def _load_frame(path: Path, hw: tuple[int, int]) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.BILINEAR)
            return np.asarray(im)
    except (FileNotFoundError, UnidentifiedImageError, OSError):
        return None


def _draw_tubes(s: ReviewSession, video_id: int) -> tuple[list[Tube], int]:
    """Tubes to draw (rejected ones left out, renamed ones under their new name) and the number left out."""
    tubes, hidden = [], 0
    for a in s.tubes(video_id):
        if s.decision(a["id"]) == REJECTED:
            hidden += 1
            continue
        tubes.append(Tube(a["id"], a["segmentations"], s.category_name(a), a.get("score")))
    return tubes, hidden


def render_video(s: ReviewSession, video_id: int, out_dir: str | Path, *, max_frames: int = 8,
                 gif_frames: int = 0, thumb_width: int = 224) -> tuple[Path, Path | None, str]:
    """Contact sheet (and GIF of the first ``gif_frames`` frames) of one video in its current review state.

    Returns (sheet PNG, GIF or None, note). Rejected tubes are not drawn. A video longer than
    ``gif_frames`` gets a GIF of its first ``gif_frames`` frames and a note saying so.
    """
    v = s.video(video_id)
    hw = (v["height"], v["width"])
    length = ytvis.video_length(v)
    names = v["file_names"]
    tubes, hidden = _draw_tubes(s, video_id)
    idx = sample_indices(length, max_frames)
    frames = [_load_frame(s.frame_root / names[t], hw) for t in idx]
    missing = sum(f is None for f in frames)
    title = f"{video_label(v)}  (video {v['id']}, {length} frames, {len(tubes)} tubes"
    title += f", {hidden} rejected hidden)" if hidden else ")"
    sheet = render_contact_sheet(frames, tubes, frame_indices=idx, title=title, thumb_width=thumb_width,
                                 frame_names=[Path(names[t]).name for t in idx])
    out_dir = Path(out_dir)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{video_id}_{video_label(v)}")
    # A new name per render: the browser caches by URL, and the sheet changes with every decision.
    version = len(list(out_dir.glob(f"{stem}.*.png"))) if out_dir.is_dir() else 0
    sheet_path = out_dir / f"{stem}.{version}.png"
    write_png(sheet, sheet_path)
    notes = []
    if missing:
        notes.append(f"{missing} of {len(idx)} shown frames missing or unreadable (grey tiles)")
    gif_path = None
    if gif_frames > 0:
        n = min(length, gif_frames)
        if length > n:
            notes.append(f"the video has {length} frames; the GIF shows the first {n}")
        order = sorted(tubes, key=lambda tb: (tb.score or 0.0, -tb.track_id))
        th = max(8, int(round(thumb_width * hw[0] / hw[1])))
        gif = [overlay_frame(_load_frame(s.frame_root / names[t], hw), order, t, (th, thumb_width))
               for t in range(n)]
        gif_path = out_dir / f"{stem}.{version}.gif"
        write_gif(gif, gif_path)
    return sheet_path, gif_path, "; ".join(notes)
