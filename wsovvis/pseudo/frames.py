"""Videos as folders of frames: listing, checked loading, and the working resolution.

Layout: ``<img_root>/<video>/<frame>.{jpg,jpeg,png}`` (any case), frames sorted by name.
Every problem (empty folder, unreadable frame, frames of different sizes) raises a
`WsovvisError` that names the file, so the runner can record it against the video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from wsovvis.errors import WsovvisError

FRAME_EXTS = (".jpg", ".jpeg", ".png")


def list_videos(img_root: str | os.PathLike) -> list[str]:
    """Sorted names of the sub-folders of ``img_root`` (one per video)."""
    root = Path(img_root)
    if not root.is_dir():
        raise WsovvisError(f"{root}: --img_root is not a folder")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise WsovvisError(f"{root}: no video folders (expected <img_root>/<video>/<frame>.jpg)")
    return names


def list_frames(video_dir: str | os.PathLike) -> list[Path]:
    """Sorted frame files of one video; raises when the folder holds none."""
    d = Path(video_dir)
    if not d.is_dir():
        raise WsovvisError(f"{d}: video folder does not exist")
    frames = sorted(p for p in d.iterdir() if p.suffix.lower() in FRAME_EXTS and not p.name.startswith("."))
    if not frames:
        raise WsovvisError(f"{d}: empty video folder (no {'/'.join(FRAME_EXTS)} frames)")
    return frames


def read_rgb(path: Path) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB; unreadable or truncated files raise naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise WsovvisError(f"{path}: unreadable frame ({e})") from e


def working_size(height: int, width: int, short_side: int, multiple: int = 1, max_long: int = 0) -> tuple[int, int]:
    """(h, w) with the short side near ``short_side`` (never upscaled), both multiples of ``multiple``.

    ``max_long`` caps the long side (0 = no cap), so panoramas stay bounded.
    """
    scale = min(1.0, short_side / min(height, width))
    if max_long:
        scale = min(scale, max_long / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


@dataclass
class Video:
    """One video's frames at a working resolution.

    ``frames``: ``uint8 [T, h, w, 3]`` RGB resized to the working size; ``size``: original (H, W);
    ``frame_names``: file names; ``stems``: names without extension (PNG names derive from them).
    """

    name: str
    frame_names: list[str]
    frames: np.ndarray
    size: tuple[int, int]

    @property
    def stems(self) -> list[str]:
        return [os.path.splitext(n)[0] for n in self.frame_names]

    def __len__(self) -> int:
        return len(self.frame_names)


def load_video(
    img_root: str | os.PathLike, name: str, short_side: int = 480, multiple: int = 1, max_long: int = 0
) -> Video:
    """Read and check every frame of ``<img_root>/<name>``, resized (INTER_AREA) to the working size."""
    paths = list_frames(Path(img_root) / name)
    size = None
    frames: list[np.ndarray] = []
    hw = None
    for p in paths:
        rgb = read_rgb(p)
        if size is None:
            size = rgb.shape[:2]
            hw = working_size(size[0], size[1], short_side, multiple, max_long)
        elif rgb.shape[:2] != size:
            raise WsovvisError(
                f"{p}: frame size {rgb.shape[1]}x{rgb.shape[0]} differs from {paths[0].name} ({size[1]}x{size[0]}); "
                "all frames of a video must have one size"
            )
        if hw != size:
            rgb = cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    return Video(name=name, frame_names=[p.name for p in paths], frames=np.stack(frames), size=tuple(size))
