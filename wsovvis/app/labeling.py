"""The Test and Batch tabs' logic, on the same code path as ``wsovvis autolabel``.

Detection, filtering, NMS and segmentation are `wsovvis.autolabel.images.label_image`; prompts
are `wsovvis.autolabel.prompts` prompt sets; models come from `wsovvis.autolabel.models`
(``--detector`` / ``--segmenter``: a ``save_pretrained`` folder or ``standin:colour``). This
module only reads uploads, turns the page's inputs into those objects and lays out the results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
DETECTION_COLUMNS = ["frame", "category", "score", "x", "y", "w", "h", "area"]
COUNT_COLUMNS = ["image", "detections", "per category"]
MAX_BATCH_IMAGES = 2000  # one page request; bigger sets belong to `wsovvis autolabel`


@dataclass
class Labeler:
    """The models the page labels with; either may be None (``missing`` then says which flag to pass)."""

    detector: object | None = None
    segmenter: object | None = None
    detector_spec: str = ""
    segmenter_spec: str = ""

    @property
    def ready(self) -> bool:
        return self.detector is not None

    @property
    def missing(self) -> str:
        if self.detector is None:
            return ("no detector: start the app with --detector DIR (an OWLv2 save_pretrained folder, or "
                    "standin:colour for the colour stand-in) to use the Test and Batch tabs; segment mode also "
                    "needs --segmenter DIR (a SAM2 folder, or standin:colour)")
        if self.segmenter is None:
            return "no segmenter: detect mode only; start the app with --segmenter DIR (SAM2) for segment mode"
        return ""

    def describe(self) -> str:
        text = f"detector: {self.detector_spec}"
        if self.segmenter is None:
            return text + "; no --segmenter (detect mode only)"
        return text + f"; segmenter: {self.segmenter_spec}"
        return text

    def require(self, mode: str) -> None:
        if self.detector is None:
            raise WsovvisError(self.missing)
        if mode == "segment" and self.segmenter is None:
            raise WsovvisError("segment mode needs a segmenter: start the app with --segmenter DIR (SAM2) or "
                               "standin:colour, or choose detect mode")


def build_labeler(detector: str | None, segmenter: str | None, device: str | None = None) -> Labeler:
    """Load the models given on the command line (`WsovvisError` naming the flag for a bad one)."""
    from wsovvis.autolabel.models import load_detector, load_segmenter

    det = load_detector(detector, device) if detector else None
    seg = load_segmenter(segmenter, device) if segmenter else None
    return Labeler(det, seg, detector or "", segmenter or "")


# ---------------------------------------------------------------------------------- inputs
def parse_prompt_text(text: str) -> tuple[list[str], dict[str, str]]:
    """Prompts typed in the page -> (class names in order, {prompt: class name}).

    Items are separated by newlines or commas; ``prompt = class`` maps a prompt to a class
    (the file syntax of ``--prompt_map``), a bare item is both prompt and class.
    """
    names: list[str] = []
    mapping: dict[str, str] = {}
    for item in (s.strip() for line in (text or "").splitlines() for s in line.split(",")):
        if not item or item.startswith("#"):
            continue
        prompt, _, cls = (s.strip() for s in item.partition("="))
        cls = cls or prompt
        if not prompt:
            raise WsovvisError(f"prompts: {item!r} has no prompt before '='")
        if cls not in names:
            names.append(cls)
        if prompt in mapping:
            raise WsovvisError(f"prompts: the prompt {prompt!r} appears twice")
        mapping[prompt] = cls
    return names, mapping


def prompt_set(text: str, vocab_path: str | os.PathLike | None):
    """A `PromptSet` from the vocabulary file when one is given, else from the typed prompts."""
    from wsovvis.autolabel.prompts import PromptSet, load_prompt_set

    if vocab_path:
        try:
            return load_prompt_set(vocab_path)
        except UnicodeDecodeError as e:
            raise WsovvisError(f"{Path(vocab_path).name}: the vocabulary file is not text or JSON ({e.reason})") from e
    names, mapping = parse_prompt_text(text)
    if not names:
        raise WsovvisError("no prompts: type what to look for (e.g. 'red, blue ball = ball') or upload a "
                           "vocabulary file")
    return PromptSet.from_names(names, mapping)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]``; `WsovvisError` naming the file when it is not an image."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as e:
        raise WsovvisError(f"{path}: file does not exist") from e
    except (UnidentifiedImageError, OSError) as e:
        raise WsovvisError(f"{path.name}: not an image or a video this page can read ({e})") from e


def read_video(path: str | os.PathLike, max_frames: int) -> tuple[list[np.ndarray], int]:
    """The first ``max_frames`` RGB frames and the video's frame count (as far as it can be known)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise WsovvisError(f"{Path(path).name}: cannot be opened as a video")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames = []
        while len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        if not frames:
            raise WsovvisError(f"{Path(path).name}: no frame could be decoded from this video")
        if len(frames) == max_frames and total <= max_frames and cap.read()[0]:
            total = max_frames + 1  # containers without a frame count: at least one more frame
        return frames, max(total, len(frames))
    finally:
        cap.release()


def read_media(path: str | os.PathLike, max_frames: int) -> tuple[list[np.ndarray], str]:
    """One image -> one frame; a video -> its first ``max_frames`` frames, with a note when it is longer."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, total = read_video(path, max_frames)
        note = (f"{path.name}: {total} frames; the preview labels the first {len(frames)} (each frame on its own; "
                "tubes over a whole video: wsovvis pseudo --engine owlv2_sam2)") if total > len(frames) else ""
        return frames, note
    return [read_image(path)], ""


def list_images(files: Sequence[str], folder: str | None) -> list[Path]:
    """Uploaded files plus the images of a server folder (sorted); `WsovvisError` when there are none."""
    paths = [Path(f) for f in files]
    if folder and folder.strip():
        root = Path(folder.strip())
        if not root.is_dir():
            raise WsovvisError(f"{root}: the image folder does not exist")
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise WsovvisError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        paths += found
    if not paths:
        raise WsovvisError("no images: upload some or give a folder on the server")
    if len(paths) > MAX_BATCH_IMAGES:
        raise WsovvisError(f"{len(paths)} images: the page labels at most {MAX_BATCH_IMAGES} at once; use "
                           "`wsovvis autolabel` for larger sets")
    return paths


def make_params(threshold: float, mode: str):
    from wsovvis.autolabel.images import AutolabelParams

    return AutolabelParams(threshold=float(threshold), mode=str(mode))


# ---------------------------------------------------------------------------------- outputs
@dataclass
class TestResult:
    """images: [(annotated PNG path, caption)]; rows: `DETECTION_COLUMNS` per detection; note: one line."""

    images: list[tuple[str, str]]
    rows: list[list]
    note: str
    annotations: list[list[dict]] = field(default_factory=list)


def _annotated_png(image: np.ndarray, anns: list[dict], names: dict[int, str], path: Path) -> str:
    from wsovvis.autolabel.preview import annotate

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(annotate(image, anns, names)).save(path, format="PNG")
    return str(path)


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new numbered folder: the browser caches images by URL, so every run gets new file names."""
    parent.mkdir(parents=True, exist_ok=True)
    k = len(list(parent.glob(f"{prefix}-*")))
    while (parent / f"{prefix}-{k:04d}").exists():
        k += 1
    out = parent / f"{prefix}-{k:04d}"
    out.mkdir()
    return out


def run_test(labeler: Labeler, media_path: str | os.PathLike, prompt_text: str, vocab_path, threshold: float,
             mode: str, out_dir: Path, *, max_frames: int = 16) -> TestResult:
    """Label one image (or the first ``max_frames`` frames of a video) and draw the preview."""
    from wsovvis.autolabel.images import label_image

    labeler.require(mode)
    prompts = prompt_set(prompt_text, vocab_path)
    params = make_params(threshold, mode)
    frames, note = read_media(media_path, max_frames)
    names = prompts.names
    run = _fresh_dir(Path(out_dir) / "test", "run")
    t0 = time.perf_counter()
    images, rows, all_anns = [], [], []
    for t, frame in enumerate(frames):
        anns = label_image(frame, prompts, labeler.detector, labeler.segmenter if mode == "segment" else None, params,
                           where=f"{Path(media_path).name}[{t}]")
        all_anns.append(anns)
        caption = f"frame {t}: {len(anns)} detections" if len(frames) > 1 else f"{len(anns)} detections"
        images.append((_annotated_png(frame, anns, names, run / f"{t:05d}.png"), caption))
        for a in anns:
            x, y, w, h = (round(float(v), 1) for v in a["bbox"])
            rows.append([t, names.get(a["category_id"], str(a["category_id"])), round(float(a["score"]), 3),
                         x, y, w, h, int(round(float(a["area"])))])
    total = sum(len(a) for a in all_anns)
    summary = (f"{total} detection(s) on {len(frames)} frame(s) in {time.perf_counter() - t0:.2f} s "
               f"({len(prompts)} prompts, threshold {float(threshold):.2f}, {mode})")
    if total == 0:
        summary += "; nothing found: try a lower threshold or other prompts"
    return TestResult(images, rows, "\n".join(s for s in (summary, note) if s), all_anns)


@dataclass
class BatchResult:
    """images: [(annotated PNG, caption)]; zip_path: the download; rows: `COUNT_COLUMNS` per image."""

    images: list[tuple[str, str]]
    zip_path: Path
    rows: list[list]
    note: str


def run_batch(labeler: Labeler, files: Sequence[str], folder: str | None, prompt_text: str, vocab_path,
              threshold: float, mode: str, max_side: int, out_dir: Path,
              progress: Callable[[int, int, str], None] | None = None) -> BatchResult:
    """Label several images; annotated gallery, per-image counts and a ZIP (resized images + coco_export.json).

    A file that is not an image is listed in the table and the note, and the others are still labelled.
    """
    from wsovvis.autolabel.images import coco_export, label_image, write_zip

    labeler.require(mode)
    prompts = prompt_set(prompt_text, vocab_path)
    params = make_params(threshold, mode)
    paths = list_images(files, folder)
    names = prompts.names
    run = _fresh_dir(Path(out_dir) / "batch", "run")
    images, rows, records, bad = [], [], [], []
    for k, p in enumerate(paths):
        if progress is not None:
            progress(k, len(paths), f"labelling {p.name}")
        try:
            image = read_image(p)
        except WsovvisError as e:
            bad.append(str(e))
            rows.append([p.name, "", f"skipped: {e}"])
            continue
        anns = label_image(image, prompts, labeler.detector, labeler.segmenter if mode == "segment" else None,
                           params, where=p.name)
        records.append((p, image, anns))
        per = {}
        for a in anns:
            n = names.get(a["category_id"], str(a["category_id"]))
            per[n] = per.get(n, 0) + 1
        rows.append([p.name, len(anns), ", ".join(f"{n}: {c}" for n, c in sorted(per.items()))])
        images.append((_annotated_png(image, anns, names, run / "annotated" / f"{k:05d}_{p.stem}.png"),
                       f"{p.name}: {len(anns)}"))
    if not records:
        raise WsovvisError("none of the files is an image: " + "; ".join(bad[:3]))
    if progress is not None:
        progress(len(paths), len(paths), "writing the ZIP")
    coco = coco_export(records, prompts, params)
    zip_path = write_zip(run / "autolabel.zip", records, coco, max_side=max_side)
    total = sum(len(a) for _, _, a in records)
    note = f"{total} detection(s) on {len(records)} image(s); ZIP: {zip_path.name}"
    if bad:
        note += f"\n{len(bad)} file(s) skipped: {bad[0]}" + (" ..." if len(bad) > 1 else "")
    if total == 0:
        note += "\nnothing found in any image: try a lower threshold or other prompts"
    return BatchResult(images, zip_path, rows, note)
