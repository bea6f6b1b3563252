"""Seeded synthetic sample videos: textured shapes moving over a panning textured background.

Each video shows 2..4 objects; the category of an object is its shape (disc, square, triangle,
star, ring, cross, hexagon). Objects are saturated and striped, the background is a desaturated,
low-contrast texture that pans slowly, so both a tiny trained model and a training-free segmenter
can find them. Objects overlap in depth order (occlusion), enter or leave through the frame
border, rotate and change scale. Every object is visible in at least one frame.

Output layout (``generate_dataset``)::

    <out>/JPEGImages/<video>/00000.jpg     RGB frames
    <out>/Annotations/<video>/00000.png    GT instance ids (palette PNG, 0 = background,
                                           id k = the k-th object of the video, same over time)
    <out>/gt.json                          YouTube-VIS GT (compressed RLE, bboxes, areas)

Every video is drawn from ``numpy.random.default_rng([seed, video_index])``, so a video does
not depend on how many videos are generated after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from wsovvis.data import masks as mask_io
from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_open
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

SHAPES = ("disc", "square", "triangle", "star", "ring", "cross", "hexagon")
MIN_VISIBLE_PX = 40  # an object must show at least this many pixels in one frame
MAX_TRIES = 50


def _regular_polygon(n: int, radius: float, phase: float = math.pi / 2) -> np.ndarray:
    a = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.42) -> np.ndarray:
    a = math.pi / 2 + math.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _cross(arm: float = 1.0, half_width: float = 0.34) -> np.ndarray:
    a, w = arm, half_width
    return np.array([(w, a), (w, w), (a, w), (a, -w), (w, -w), (w, -a),
                     (-w, -a), (-w, -w), (-a, -w), (-a, w), (-w, w), (-w, a)], dtype=float)


# Outlines in local units (the shape fits the unit disc); disc and ring are tested analytically.
_POLYGONS = {
    "square": np.array([(0.8, 0.8), (0.8, -0.8), (-0.8, -0.8), (-0.8, 0.8)]),
    "triangle": _regular_polygon(3, 1.0),
    "star": _star(),
    "cross": _cross(),
    "hexagon": _regular_polygon(6, 0.95, phase=0.0),
}


def _in_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of points ``(u, v)`` (any equal shapes) against ``poly [N, 2]``."""
    inside = np.zeros(u.shape, dtype=bool)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    for a, b, c, d in zip(x1, y1, x2, y2):
        if b == d:
            continue
        crosses = (b > v) != (d > v)
        inside ^= crosses & (u < (c - a) * (v - b) / (d - b) + a)
    return inside


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the shape's local frame (unit-disc sized); ``u, v`` any equal shapes -> bool."""
    r2 = u * u + v * v
    if shape == "disc":
        return r2 <= 1.0
    if shape == "ring":
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if shape in _POLYGONS:
        return _in_polygon(u, v, _POLYGONS[shape])
    raise WsovvisError(f"unknown synthetic shape {shape!r}; choose from {', '.join(SHAPES)}")


@dataclass
class _Object:
    """One moving object; positions/scales are interpolated linearly from t=0 to t=T-1."""

    track_id: int
    category: int  # index into SHAPES
    p0: np.ndarray  # centre (x, y) at the first frame, pixels
    p1: np.ndarray  # centre at the last frame
    r0: float  # radius in pixels at the first frame
    r1: float
    angle0: float
    spin: float  # radians per frame
    color: np.ndarray  # RGB 0..1
    stripe_period: float  # local units
    stripe_phase: float

    def at(self, s: float) -> tuple[np.ndarray, float]:
        """Centre ``(x, y)`` and radius at clip fraction ``s`` in 0..1."""
        return self.p0 + s * (self.p1 - self.p0), self.r0 + s * (self.r1 - self.r0)


@dataclass
class SyntheticDataset:
    """Where a generated set lives. ``categories``: ``[{id, name, supercategory}]`` as in ``gt.json``."""

    root: Path
    img_root: Path
    mask_root: Path
    gt_json: Path
    video_names: list[str]
    categories: list[dict]
    num_frames: int
    height: int
    width: int
    seed: int
    num_tracks: int = 0
    extra: dict = field(default_factory=dict)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, w = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, w, p), (q, v, p), (p, v, w), (p, q, v), (w, p, v), (v, p, q)][i])


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int = 1) -> np.ndarray:
    """Noise ``[h, w, channels]`` in -1..1 with features about ``cell`` pixels wide.

    Drawn on a coarse grid and upsampled (bicubic), which costs far less than a wide Gaussian
    filter at full resolution.
    """
    gh, gw = max(2, math.ceil(h / cell) + 2), max(2, math.ceil(w / cell) + 2)
    out = np.empty((h, w, channels), dtype=np.float32)
    for c in range(channels):
        coarse = gaussian_filter(rng.standard_normal((gh, gw)), sigma=0.8).astype(np.float32)
        up = Image.fromarray(coarse, mode="F").resize((int(gw * cell), int(gh * cell)), Image.BICUBIC)
        out[..., c] = np.asarray(up)[:h, :w]
    return out / (np.abs(out).max() + 1e-8)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Desaturated low-contrast texture ``[h, w, 3]`` in 0..1: smooth blobs, grain and faint stripes."""
    grey = rng.uniform(0.35, 0.6)
    tint = rng.uniform(-0.05, 0.05, size=3)
    blobs = _smooth_noise(rng, h, w, max(h, w) / 6)[..., 0]
    grain = gaussian_filter(rng.standard_normal((h, w)), sigma=1.0)
    grain /= np.abs(grain).max() + 1e-8
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, math.pi)
    stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / rng.uniform(10, 24))
    lum = grey + 0.12 * blobs + 0.05 * grain + 0.03 * stripes
    hue = _smooth_noise(rng, h, w, max(h, w) / 4, channels=3)
    return np.clip(lum[..., None] + tint + 0.03 * hue, 0, 1)


def _crop_bilinear(tex: np.ndarray, oy: float, ox: float, h: int, w: int) -> np.ndarray:
    """``[h, w, 3]`` window of ``tex`` at a sub-pixel offset (the pan is smooth, not jerky)."""
    y0, x0 = int(math.floor(oy)), int(math.floor(ox))
    fy, fx = oy - y0, ox - x0
    a = tex[y0:y0 + h, x0:x0 + w]
    b = tex[y0:y0 + h, x0 + 1:x0 + w + 1]
    c = tex[y0 + 1:y0 + h + 1, x0:x0 + w]
    d = tex[y0 + 1:y0 + h + 1, x0 + 1:x0 + w + 1]
    return (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)


def _sample_objects(
    rng: np.random.Generator, n: int, cats: list[int], num_frames: int, h: int, w: int
) -> list[_Object]:
    """Trajectories of kinds 'inside', 'enter', 'leave' and 'cross' (passes over an earlier object)."""
    side = min(h, w)
    objs: list[_Object] = []
    for k in range(n):
        r_start = rng.uniform(0.12, 0.22) * side
        r_end = r_start * rng.uniform(0.7, 1.45)  # scale change over the clip
        kind = rng.choice(["inside", "enter", "leave", "cross"], p=[0.3, 0.25, 0.2, 0.25]) if k else "inside"
        if kind == "cross" and not objs:
            kind = "inside"

        def inside_point(r: float) -> np.ndarray:
            return np.array([rng.uniform(r, w - r), rng.uniform(r, h - r)])

        def outside_point(r: float) -> np.ndarray:
            edge = rng.integers(4)
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            out = 0.7 * r  # mostly outside: the object slides in through the border
            return np.array([(-out, y), (w + out, y), (x, -out), (x, h + out)][edge])

        if kind == "enter":
            p0, p1 = outside_point(r_start), inside_point(r_end)
        elif kind == "leave":
            p0, p1 = inside_point(r_start), outside_point(r_end)
        elif kind == "cross":
            other = objs[int(rng.integers(len(objs)))]
            tc = rng.uniform(0.3, 0.7)
            target = other.at(tc)[0] + rng.normal(0, 0.25 * other.r0, size=2)
            vel = rng.normal(0, 0.45 * side, size=2)  # displacement over the whole clip
            p0, p1 = target - tc * vel, target + (1 - tc) * vel
        else:
            p0 = inside_point(r_start)
            p1 = np.clip(p0 + rng.normal(0, 0.3 * side, size=2), r_end, [w - r_end, h - r_end])
        hue = rng.uniform(0, 1)
        objs.append(
            _Object(
                track_id=k + 1,
                category=cats[k],
                p0=p0,
                p1=p1,
                r0=r_start,
                r1=r_end,
                angle0=rng.uniform(-0.3, 0.3),
                spin=rng.uniform(-0.08, 0.08),
                color=_hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0)),
                stripe_period=rng.uniform(0.35, 0.6),
                stripe_phase=rng.uniform(0, 2 * math.pi),
            )
        )
    return objs


def _draw(frame: np.ndarray, ids: np.ndarray, obj: _Object, t: int, num_frames: int) -> None:
    """Paint ``obj`` at frame ``t`` over ``frame [H, W, 3]`` and ``ids [H, W]`` (painter's order)."""
    h, w = ids.shape
    s = t / max(num_frames - 1, 1)
    centre, radius = obj.at(s)
    angle = obj.angle0 + obj.spin * t
    x0, x1 = max(int(centre[0] - radius - 1), 0), min(int(centre[0] + radius + 2), w)
    y0, y1 = max(int(centre[1] - radius - 1), 0), min(int(centre[1] + radius + 2), h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = (xx - centre[0]) / radius, (yy - centre[1]) / radius
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    m = shape_mask(SHAPES[obj.category], u, -v)  # -v: image rows grow downwards, shapes point up
    if not m.any():
        return
    shade = 1.0 + 0.22 * np.sin(2 * math.pi * u / obj.stripe_period + obj.stripe_phase)
    patch = np.clip(obj.color[None, None, :] * shade[..., None], 0, 1)
    frame[y0:y1, x0:x1][m] = patch[m]
    ids[y0:y1, x0:x1][m] = obj.track_id


def render_video(
    rng: np.random.Generator, cats: list[int], num_frames: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, list[_Object]]:
    """Render one video: frames ``uint8 [T, H, W, 3]``, ids ``uint8 [T, H, W]`` and its objects.

    Objects are resampled until each shows ``MIN_VISIBLE_PX`` pixels in some frame; if that
    never happens within ``MAX_TRIES`` the unseen ones are dropped (and logged).
    """
    pan = max(4, int(0.25 * min(h, w)))
    tex = _background(rng, h + pan + 2, w + pan + 2)
    start = rng.uniform(0, pan, size=2)
    direction = rng.normal(size=2)
    step = direction / (np.linalg.norm(direction) + 1e-8) * rng.uniform(0.3, 1.0)
    step *= min(1.0, pan / (max(num_frames - 1, 1) * np.abs(step).max() + 1e-8))
    offsets = [np.clip(start + step * t, 0, pan) for t in range(num_frames)]
    for _attempt in range(MAX_TRIES):
        objs = _sample_objects(rng, len(cats), cats, num_frames, h, w)
        depth = rng.permutation(len(objs))  # painter's order: later in the list = nearer
        frames = np.empty((num_frames, h, w, 3), dtype=np.float64)
        ids = np.zeros((num_frames, h, w), dtype=np.uint8)
        for t in range(num_frames):
            frames[t] = _crop_bilinear(tex, offsets[t][1], offsets[t][0], h, w)
            for k in depth:
                _draw(frames[t], ids[t], objs[k], t, num_frames)
        visible = [(ids == o.track_id).sum(axis=(1, 2)).max() for o in objs]
        if min(visible) >= MIN_VISIBLE_PX:
            break
    else:
        keep = [o for o, n in zip(objs, visible) if n >= MIN_VISIBLE_PX]
        log.warning("dropped %d object(s) never visible after %d tries", len(objs) - len(keep), MAX_TRIES)
        remap = np.zeros(256, dtype=np.uint8)
        for new, o in enumerate(keep, 1):
            remap[o.track_id] = new
            o.track_id = new
        ids, objs = remap[ids], keep
    return (frames * 255 + 0.5).astype(np.uint8), ids, objs


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    with atomic_open(path, "wb") as f:
        Image.fromarray(rgb).save(f, format="JPEG", quality=quality)


def _video_annotations(ids: np.ndarray, objs: list[_Object], video_id: int, first_ann_id: int) -> list[dict]:
    """One YTVIS annotation per object from the id maps ``[T, H, W]`` (None where absent)."""
    anns = []
    for k, o in enumerate(objs):
        segs, boxes, areas = [], [], []
        for t in range(ids.shape[0]):
            m = ids[t] == o.track_id
            if not m.any():
                segs.append(None)
                boxes.append(None)
                areas.append(None)
                continue
            segs.append(rle_utils.encode(m))
            boxes.append(rle_utils.mask_bbox(m))
            areas.append(int(m.sum()))
        anns.append({
            "id": first_ann_id + k,
            "video_id": video_id,
            "category_id": o.category + 1,
            "iscrowd": 0,
            "track_id": o.track_id,  # the pixel value in Annotations/<video>/*.png
            "segmentations": segs,
            "bboxes": boxes,
            "areas": areas,
        })
    return anns


MAX_SIDE = 8192
MAX_VIDEO_BYTES = 8 * 2**30
BYTES_PER_PIXEL = 24 + 1 + 12  # float64 RGB frames, uint8 ids, float32 working arrays (render_video)


def generate_dataset(
    out_dir: str | Path,
    *,
    num_videos: int = 4,
    num_frames: int = 8,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    num_categories: int = 5,
    min_objects: int = 2,
    max_objects: int = 4,
    jpeg_quality: int = 92,
    split_name: str = "synthetic",
    progress: bool = True,
) -> SyntheticDataset:
    """Write ``num_videos`` videos of ``num_frames`` ``height x width`` frames under ``out_dir``.

    Categories are the first ``num_categories`` of `SHAPES` (ids 1..K); objects cycle through a
    seeded permutation of them so that every category appears once there are enough objects.
    ``gt.json`` is written last, so its presence marks a complete set.
    """
    if not 1 <= num_categories <= len(SHAPES):
        raise WsovvisError(f"num_categories must be 1..{len(SHAPES)}, got {num_categories}")
    if not 1 <= min_objects <= max_objects <= 255:
        raise WsovvisError(f"need 1 <= min_objects <= max_objects <= 255, got {min_objects}, {max_objects}")
    if num_videos < 1 or num_frames < 1:
        raise WsovvisError(f"num_videos and num_frames must be >= 1, got {num_videos}, {num_frames}")
    if height < 32 or width < 32:
        raise WsovvisError(f"frames must be at least 32x32, got {height}x{width}")
    # checked before anything is allocated: one video is rendered in memory at once
    need = num_frames * height * width * BYTES_PER_PIXEL
    if max(height, width) > MAX_SIDE or need > MAX_VIDEO_BYTES:
        raise WsovvisError(f"synthetic videos of {num_frames} frames of {height}x{width} would need "
                           f"{need / 2**30:.1f} GiB of memory each (limit {MAX_VIDEO_BYTES / 2**30:.0f} GiB, sides "
                           f"<= {MAX_SIDE}); use fewer frames or smaller frames")
    root = Path(out_dir)
    img_root, mask_root = root / "JPEGImages", root / "Annotations"
    categories = [{"id": i + 1, "name": SHAPES[i], "supercategory": "shape"} for i in range(num_categories)]
    cat_cycle = list(np.random.default_rng([seed, 2**31]).permutation(num_categories))
    videos, annotations, names = [], [], []
    next_cat = 0
    for vi in tqdm(range(num_videos), desc="synth", unit="video", disable=not progress):
        rng = np.random.default_rng([seed, vi])
        n = int(rng.integers(min_objects, max_objects + 1))
        cats = [int(cat_cycle[(next_cat + j) % num_categories]) for j in range(n)]
        next_cat += n
        frames, ids, objs = render_video(rng, cats, num_frames, height, width)
        name = f"synth_{vi:04d}"
        names.append(name)
        file_names = []
        for t in range(num_frames):
            _write_jpeg(img_root / name / f"{t:05d}.jpg", frames[t], jpeg_quality)
            mask_io.write_ids(mask_root / name / f"{t:05d}.png", ids[t])
            file_names.append(f"{name}/{t:05d}.jpg")
        videos.append({"id": vi + 1, "name": name, "file_names": file_names, "height": height,
                       "width": width, "length": num_frames})
        annotations += _video_annotations(ids, objs, vi + 1, len(annotations) + 1)
    data = {
        "info": {"description": f"wsovvis synthetic shapes ({split_name})", "seed": seed, "version": "1"},
        "licenses": [],
        "videos": videos,
        "categories": categories,
        "annotations": annotations,
    }
    ytvis.write(data, root / "gt.json")
    log.info("synthetic set: %d videos x %d frames (%dx%d), %d tracks, %d categories -> %s",
             num_videos, num_frames, height, width, len(annotations), num_categories, root)
    return SyntheticDataset(root=root, img_root=img_root, mask_root=mask_root, gt_json=root / "gt.json",
                            video_names=names, categories=categories, num_frames=num_frames,
                            height=height, width=width, seed=seed, num_tracks=len(annotations))
