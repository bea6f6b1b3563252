"""Test tab, video as tubes: the first frames of a clip through the ``owlv2_sam2`` pseudo-tube engine.

The same engine as ``wsovvis pseudo --engine owlv2_sam2`` (`wsovvis.pseudo.owlv2_sam2.Owlv2Sam2Engine`:
detection on key frames, video-segmenter tracking, id matching), run on the clip in memory and drawn
as a contact sheet plus a GIF with one colour per tube.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsovvis.app.review import present_span
from wsovvis.viz.contact_sheet import render_contact_sheet, sample_indices
from wsovvis.viz.overlay import Tube, overlay_frame, write_gif, write_png

TUBE_COLUMNS = ["tube", "category", "score", "frames", "present in"]
KEY_EVERY = 5  # the engine's default key-frame spacing


def track_clip(frames: list[np.ndarray], name: str, detector, tracker, prompts, params,
               key_every: int = KEY_EVERY) -> list[Tube]:
    """Tubes of a clip (``uint8 [H, W, 3]`` frames of one size) as drawable `Tube`s, best score first."""
    from wsovvis.pseudo.frames import Video
    from wsovvis.pseudo.owlv2_sam2 import Owlv2Sam2Engine

    video = Video(name=name, frame_names=[f"{t:05d}" for t in range(len(frames))], frames=np.stack(frames),
                  size=frames[0].shape[:2])
    engine = Owlv2Sam2Engine(detector, tracker, prompts, params, key_every=key_every, min_len=1)
    result = engine(video)
    names = prompts.names
    out = []
    for tb in result.tubes:
        masks = [tb.masks.get(t) for t in range(len(frames))]
        out.append(Tube(tb.tube_id, masks, names.get(tb.category_id, str(tb.category_id)), float(tb.score)))
    out.sort(key=lambda tb: (-(tb.score or 0.0), tb.track_id))
    return out


def tube_rows(tubes: list[Tube]) -> list[list]:
    """`TUBE_COLUMNS` per tube."""
    n = len(tubes[0].masks) if tubes else 0
    return [[tb.track_id, tb.category, round(float(tb.score or 0.0), 3), f"{tb.num_present()}/{n}",
             present_span(tb.masks)] for tb in tubes]


def draw_clip(frames: list[np.ndarray], tubes: list[Tube], title: str, out_dir: Path,
              thumb_width: int = 320) -> list[tuple[str, str]]:
    """[(contact sheet PNG, caption), (GIF, caption)] of the tracked clip."""
    out_dir.mkdir(parents=True, exist_ok=True)
    idx = sample_indices(len(frames), 8)
    sheet = render_contact_sheet([frames[t] for t in idx], tubes, frame_indices=idx, title=title,
                                 thumb_width=thumb_width // 2 if len(idx) > 1 else thumb_width)
    write_png(sheet, out_dir / "tubes.png")
    h, w = frames[0].shape[:2]
    size = (max(8, int(round(thumb_width * h / w))), thumb_width)
    order = sorted(tubes, key=lambda tb: (tb.score or 0.0, -tb.track_id))
    write_gif([overlay_frame(f, order, t, size) for t, f in enumerate(frames)], out_dir / "tubes.gif")
    return [(str(out_dir / "tubes.png"), f"{len(tubes)} tube(s)"), (str(out_dir / "tubes.gif"), "tracked clip")]
