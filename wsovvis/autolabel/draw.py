"""Preview of auto-labelled annotations: masks (translucent fill + outline), boxes and "class score" tags."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import ImageDraw

from wsovvis.data import rle as rle_utils
from wsovvis.viz.colors import text_color, track_color
from wsovvis.viz.overlay import Tube, font, overlay_frame


def annotate(image: np.ndarray, annotations: Sequence[dict], categories: Sequence[dict]) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB image with ``annotations`` (COCO dicts as `label_image` returns: ``bbox``
    xywh, ``category_id``, optional ``score`` and ``segmentation`` RLE / polygons) drawn over it.

    Colours follow the category, so every instance of one class has one colour.
    """
    from wsovvis.data.coco import segmentation_to_rle

    h, w = image.shape[:2]
    names = {int(c["id"]): str(c["name"]) for c in categories}
    tubes = []
    for a in annotations:
        seg = a.get("segmentation")
        mask = None
        if seg:
            mask = rle_utils.decode(segmentation_to_rle(seg, h, w)).astype(bool)
        tubes.append(Tube(track_id=int(a["category_id"]), masks=[mask]))
    pil = overlay_frame(np.asarray(image, dtype=np.uint8), tubes, 0, (h, w), tag=False)
    draw = ImageDraw.Draw(pil)
    f = font(max(9, min(14, h // 20)))
    for a in annotations:
        color = track_color(int(a["category_id"]))
        x, y, bw, bh = (float(v) for v in a["bbox"])
        draw.rectangle([x, y, x + bw - 1, y + bh - 1], outline=color, width=2)
        text = names.get(int(a["category_id"]), str(a["category_id"]))
        if a.get("score") is not None:
            text += f" {float(a['score']):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
        tw, th = right - left + 4, bottom - top + 2
        tx, ty = min(max(x, 0), max(w - tw, 0)), min(max(y - th, 0), max(h - th, 0))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=color)
        draw.text((tx + 2 - left, ty + 1 - top), text, fill=text_color(color), font=f)
    return np.asarray(pil)
