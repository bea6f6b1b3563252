"""Deterministic stand-ins behind the `Detector` / `Segmenter` / `VideoSegmenter` interfaces.

They find flat-coloured shapes by colour name, so tests, the web app and demos can check the
auto-labelling logic (categories, NMS, ids, export) exactly, without model weights:

* `ColourDetector`: a prompt naming a colour of `COLOURS` ("red", "a red ball") yields one box
  per 8-connected part of that colour (``score = 0.5 + 0.5 * part area / box area``, so a solid
  rectangle scores 1.0 and a disc ~0.89); prompts naming no colour find nothing.
* `ColourSegmenter`: each box -> the pixels of the box's dominant palette colour inside the box.
* `ColourVideoTracker`: an object prompted on frame 0 follows the part of its colour that
  overlaps its previous mask most (else the nearest within `max_jump` px of its centre); when none
  is left it is lost (empty masks from then on), as SAM2 drops an object it loses.

Selected on the command line with ``--detector standin:colour --segmenter standin:colour``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from wsovvis.autolabel.models import Detections
from wsovvis.errors import WsovvisError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30), "green": (30, 200, 60), "blue": (40, 70, 230), "yellow": (240, 220, 30),
    "cyan": (30, 220, 230), "magenta": (220, 40, 210), "orange": (250, 140, 20), "white": (250, 250, 250),
}
TOLERANCE = 40  # max per-channel difference: survives resizing and mild compression, not a neighbour colour
MIN_AREA = 4


def colour_mask(image: np.ndarray, colour: str) -> np.ndarray:
    """bool ``[H, W]``: pixels within `TOLERANCE` of ``COLOURS[colour]`` on every channel."""
    ref = np.array(COLOURS[colour], dtype=np.int16)
    return (np.abs(np.asarray(image, dtype=np.int16) - ref).max(axis=-1) <= TOLERANCE)


def prompt_colour(prompt: str) -> str | None:
    """The first word of ``prompt`` that names a colour of `COLOURS` (None if none does)."""
    for word in prompt.lower().replace(",", " ").split():
        if word in COLOURS:
            return word
    return None


def _parts(mask: np.ndarray) -> list[np.ndarray]:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= MIN_AREA]


def _box(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


class ColourDetector:
    """`Detector` finding coloured parts named by the prompts (see the module docstring)."""

    def detect(self, image: np.ndarray, prompts: Sequence[str]) -> Detections:
        boxes, scores, labels = [], [], []
        for j, prompt in enumerate(prompts):
            colour = prompt_colour(prompt)
            if colour is None:
                continue
            for part in _parts(colour_mask(image, colour)):
                b = _box(part)
                boxes.append(b)
                scores.append(0.5 + 0.5 * part.sum() / ((b[2] - b[0]) * (b[3] - b[1])))
                labels.append(j)
        if not boxes:
            return Detections.empty()
        return Detections(np.array(boxes), np.array(scores), np.array(labels))


def _dominant(image: np.ndarray, region: np.ndarray) -> str | None:
    best, best_n = None, 0
    for name in COLOURS:
        n = int((colour_mask(image, name) & region).sum())
        if n > best_n:
            best, best_n = name, n
    return best


def _box_region(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    h, w = shape
    x1, y1, x2, y2 = box
    r = np.zeros((h, w), bool)
    r[max(0, int(np.floor(y1))):min(h, int(np.ceil(y2))), max(0, int(np.floor(x1))):min(w, int(np.ceil(x2)))] = True
    return r


class ColourSegmenter:
    """`Segmenter`: each box -> its dominant palette colour's pixels inside the box."""

    def segment(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), h, w), bool)
        for i, b in enumerate(boxes):
            region = _box_region((h, w), b)
            colour = _dominant(image, region)
            if colour is not None:
                out[i] = colour_mask(image, colour) & region
        return out


class ColourVideoTracker:
    """`VideoSegmenter` following coloured parts (see the module docstring)."""

    def __init__(self, max_jump: float = 12.0):
        self.max_jump = max_jump

    def _follow(self, image: np.ndarray, colour: str, prev: np.ndarray) -> np.ndarray:
        parts = _parts(colour_mask(image, colour))
        if not parts:
            return np.zeros(prev.shape, bool)
        overlap = [int((p & prev).sum()) for p in parts]
        if max(overlap) > 0:
            return parts[int(np.argmax(overlap))]
        cy, cx = (float(np.mean(a)) for a in np.nonzero(prev))
        dist = []
        for p in parts:
            ys, xs = np.nonzero(p)
            dist.append(float(np.hypot(ys.mean() - cy, xs.mean() - cx)))
        k = int(np.argmin(dist))
        return parts[k] if dist[k] <= self.max_jump else np.zeros(prev.shape, bool)

    def propagate(self, frames: np.ndarray, prompts: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        frames = np.asarray(frames)
        t, h, w = frames.shape[:3]
        out = {}
        for k, prompt in prompts.items():
            p = np.asarray(prompt)
            region = _box_region((h, w), p) if p.shape == (4,) else p.astype(bool)
            masks = np.zeros((t, h, w), bool)
            colour = _dominant(frames[0], region)
            if colour is not None:
                m = colour_mask(frames[0], colour) & region
                for i in range(t):
                    if i:
                        m = self._follow(frames[i], colour, m)
                    if not m.any():
                        break  # lost: SAM2 does not bring an object back by itself either
                    masks[i] = m
            out[k] = masks
        return out


def _check(kind: str, flag: str) -> None:
    if kind != "colour":
        raise WsovvisError(f"{flag} standin:{kind}: unknown stand-in; the only one is standin:colour")


def standin_detector(kind: str) -> ColourDetector:
    _check(kind, "--detector")
    return ColourDetector()


def standin_segmenter(kind: str) -> ColourSegmenter:
    _check(kind, "--segmenter")
    return ColourSegmenter()


def standin_video_segmenter(kind: str) -> ColourVideoTracker:
    _check(kind, "--segmenter")
    return ColourVideoTracker()
