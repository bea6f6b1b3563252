"""The Test and Batch tabs' logic, on the same code path as ``wsovvis autolabel``.

Detection, filtering, NMS and segmentation are `wsovvis.autolabel.images.label_image`; prompts
are `wsovvis.autolabel.prompts` prompt sets; models come from `wsovvis.autolabel.models`
(``--detector`` / ``--segmenter``: a ``save_pretrained`` folder or ``standin:colour``). This
module only reads uploads, turns the page's inputs into those objects and lays out the results.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DETECTION_COLUMNS = ["frame", "category", "score", "x", "y", "w", "h", "area"]
COUNT_COLUMNS = ["image", "detections", "per category"]
MAX_GALLERY = 48  # annotated previews per batch; the ZIP and the table hold every image


@dataclass
class Labeler:
    """The models the page labels with; either may be None (``missing`` then says which flag to pass)."""

    detector: object | None = None
    segmenter: object | None = None
    detector_spec: str = ""
    segmenter_spec: str = ""
    device: str | None = None
    _tracker: object | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.detector is not None

    def video_tracker(self):
        """The ``--segmenter`` as a video segmenter (SAM2 video / stand-in), loaded on first use."""
        if self._tracker is None:
            from wsovvis.autolabel.models import load_video_segmenter

            if not self.segmenter_spec:
                raise WsovvisError("video tubes need --segmenter (a SAM2 video folder, or standin:colour)")
            try:
                self._tracker = load_video_segmenter(self.segmenter_spec, self.device)
            except WsovvisError as e:
                raise WsovvisError(f"video tubes need a SAM2 *video* model as --segmenter ({e}); choose "
                                   "'frames' to label the frames one by one") from e
        return self._tracker

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
    return Labeler(det, seg, detector or "", segmenter or "", device)


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
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise WsovvisError(f"{path.name}: not an image or a video this page can read ({e})") from e


def read_video(path: str | os.PathLike, max_frames: int) -> tuple[list[np.ndarray], str]:
    """The first ``max_frames`` RGB frames and the video's length in words: ``"12"``, or ``"more than 4"``
    when the container does not say and there are more frames than read."""
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
        if total <= len(frames):
            # No (or a wrong) frame count in the container: look for one more frame.
            more = len(frames) == max_frames and cap.read()[0]
            return frames, f"more than {len(frames)}" if more else str(len(frames))
        return frames, str(total)
    finally:
        cap.release()


def read_media(path: str | os.PathLike, max_frames: int) -> tuple[list[np.ndarray], str]:
    """One image -> one frame; a video -> its first ``max_frames`` frames, with a note when it is longer."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, total = read_video(path, max_frames)
        note = (f"{path.name}: {total} frames; the preview uses the first {len(frames)} (the whole video: "
                "wsovvis pseudo --engine owlv2_sam2)") if total != str(len(frames)) else ""
        return frames, note
    return [read_image(path)], ""


def stage_uploads(files: Sequence[str], folder: Path) -> tuple[list[str], list[str]]:
    """Put uploaded images into ``folder`` (the input of the folder run); -> (staged names, skipped messages).

    A file without an image extension is skipped with a message (the folder run would ignore it
    silently); equal names get a numeric prefix.
    """
    from wsovvis.autolabel.run import IMAGE_EXTS

    folder.mkdir(parents=True, exist_ok=True)
    staged, skipped = [], []
    for f in files:
        src = Path(f)
        if src.suffix.lower() not in IMAGE_EXTS:
            skipped.append(f"{src.name}: not an image ({src.suffix or 'no extension'}; expected "
                           f"{'/'.join(IMAGE_EXTS)})")
            continue
        name, k = src.name, 1
        while (folder / name).exists():
            name, k = f"{k}_{src.name}", k + 1
        try:
            os.link(src, folder / name)  # same file system (Gradio's cache is under the session root)
        except OSError:
            shutil.copyfile(src, folder / name)
        staged.append(name)
    return staged, skipped


def make_params(threshold: float, mode: str, max_detections: int = 100):
    """The page's settings as `AutolabelParams` (NMS and the rest at the ``wsovvis autolabel`` defaults)."""
    from wsovvis.autolabel.images import AutolabelParams

    return AutolabelParams(threshold=float(threshold), mode=str(mode), max_detections=int(max_detections))


# ---------------------------------------------------------------------------------- outputs
@dataclass
class TestResult:
    """images: [(annotated PNG/GIF path, caption)]; rows under ``headers``; note: what was done, warnings."""

    images: list[tuple[str, str]]
    rows: list[list]
    note: str
    annotations: list[list[dict]] = field(default_factory=list)
    headers: list[str] = field(default_factory=lambda: list(DETECTION_COLUMNS))


def _annotated_png(image: np.ndarray, anns: list[dict], categories, path: Path) -> str:
    from wsovvis.autolabel.draw import annotate

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(annotate(image, anns, categories)).save(path, format="PNG")
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
             mode: str, out_dir: Path, *, max_frames: int = 16, video_as: str = "frames",
             max_detections: int = 100) -> TestResult:
    """Label one image (or the first ``max_frames`` frames of a video) and draw the preview.

    A video with ``video_as="tubes"`` (segment mode) is tracked by the ``owlv2_sam2`` pseudo-tube
    engine instead of labelling each frame on its own.
    """
    from wsovvis.autolabel.images import label_image

    labeler.require(mode)
    prompts = prompt_set(prompt_text, vocab_path)
    params = make_params(threshold, mode, max_detections)
    frames, note = read_media(media_path, max_frames)
    names = prompts.names
    run = _fresh_dir(Path(out_dir) / "test", "run")
    t0 = time.perf_counter()
    if len(frames) > 1 and video_as == "tubes":
        if mode != "segment":
            note = "\n".join(s for s in (note, "tubes need segment mode: frames labelled one by one") if s)
        else:
            return _run_tubes(labeler, frames, Path(media_path).name, prompts, params, run, note, t0)
    images, rows, all_anns = [], [], []
    for t, frame in enumerate(frames):
        anns = label_image(frame, prompts, labeler.detector, labeler.segmenter if mode == "segment" else None, params,
                           where=f"{Path(media_path).name}[{t}]")
        all_anns.append(anns)
        caption = f"frame {t}: {len(anns)} detections" if len(frames) > 1 else f"{len(anns)} detections"
        images.append((_annotated_png(frame, anns, prompts.categories, run / f"{t:05d}.png"), caption))
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


def _run_tubes(labeler: Labeler, frames, name: str, prompts, params, run: Path, note: str, t0: float) -> TestResult:
    from wsovvis.app import video_preview

    tubes = video_preview.track_clip(frames, name, labeler.detector, labeler.video_tracker(), prompts, params)
    title = f"{name}: first {len(frames)} frames, {len(tubes)} tube(s)"
    images = video_preview.draw_clip(frames, tubes, title, run)
    summary = (f"{len(tubes)} tube(s) over {len(frames)} frame(s) in {time.perf_counter() - t0:.2f} s "
               f"(owlv2_sam2 engine, key frame every {video_preview.KEY_EVERY}; {len(prompts)} prompts, "
               f"threshold {params.threshold:.2f})")
    if not tubes:
        summary += "; nothing found: try a lower threshold or other prompts"
    return TestResult(images, video_preview.tube_rows(tubes), "\n".join(s for s in (summary, note) if s),
                      headers=list(video_preview.TUBE_COLUMNS))


@dataclass
class BatchResult:
    """images: [(annotated PNG, caption)]; zip_path: the download; rows: `COUNT_COLUMNS` per image."""

    images: list[tuple[str, str]]
    zip_path: Path
    rows: list[list]
    note: str
    coco: dict = field(default_factory=dict)


def run_batch(labeler: Labeler, files: Sequence[str], folder: str | None, prompt_text: str, vocab_path,
              threshold: float, mode: str, max_side: int, out_dir: Path, *, max_detections: int = 100,
              max_gallery: int = MAX_GALLERY,
              progress: bool = False) -> BatchResult:
    """Label several images with the folder run of ``wsovvis autolabel images`` (`run_images`) and
    write its ZIP (`write_zip`: resized images + ``coco_export.json``); plus an annotated gallery and
    per-image counts. Uploaded files are staged into a session folder first; a server ``folder`` is
    labelled in place (its outputs still go to the session folder). Unreadable images are listed, the
    others labelled.
    """
    from wsovvis.autolabel.export import write_zip
    from wsovvis.autolabel.run import run_images
    from wsovvis.pseudo.frames import read_rgb

    labeler.require(mode)
    prompts = prompt_set(prompt_text, vocab_path)
    params = make_params(threshold, mode, max_detections)
    run = _fresh_dir(Path(out_dir) / "batch", "run")
    skipped: list[str] = []
    if folder and folder.strip():
        if files:
            raise WsovvisError("give either uploaded images or a folder on the server, not both")
        img_root = Path(folder.strip())
        if not img_root.is_dir():
            raise WsovvisError(f"{img_root}: the image folder does not exist on the server")
    else:
        if not files:
            raise WsovvisError("no images: upload some or give a folder on the server")
        img_root = run / "images"
        staged, skipped = stage_uploads(files, img_root)
        if not staged:
            raise WsovvisError("none of the uploads is an image: " + "; ".join(skipped[:3]))
    models = {"detector": labeler.detector_spec, "segmenter": labeler.segmenter_spec if mode == "segment" else None}
    res = run_images(img_root, run / "labels", prompts, labeler.detector,
                     labeler.segmenter if mode == "segment" else None, params, models, overwrite=True,
                     progress=progress)
    zip_path = run / "autolabel.zip"
    write_zip(zip_path, res.coco, img_root, int(max_side))
    names = prompts.names
    rows, images = [], []
    for rec in res.records:
        per: dict[str, int] = {}
        for a in rec["annotations"]:
            per[names[a["category_id"]]] = per.get(names[a["category_id"]], 0) + 1
        rows.append([rec["file_name"], len(rec["annotations"]), ", ".join(f"{n}: {c}" for n, c in sorted(per.items()))])
        if len(images) < max_gallery:
            png = run / "annotated" / f"{len(images):05d}.png"
            images.append((_annotated_png(read_rgb(img_root / rec["file_name"]), rec["annotations"],
                                          prompts.categories, png), f"{rec['file_name']}: {len(rec['annotations'])}"))
    rows += [[name, "", f"failed: {why}"] for name, why in sorted(res.failed.items())]
    rows += [[msg.split(":", 1)[0], "", "skipped: " + msg.split(":", 1)[1].strip()] for msg in skipped]
    note = f"{res.summary()}; ZIP {zip_path.name} (long side {int(max_side)} px)"
    if len(res.records) > max_gallery:
        note += f"\nthe gallery shows the first {max_gallery} images; the ZIP and the table hold all"
    if skipped or res.failed:
        first = skipped[0] if skipped else next(iter(res.failed.values()))
        note += f"\n{len(skipped) + len(res.failed)} file(s) not labelled, e.g. {first}"
    if res.num_annotations == 0:
        note += "\nnothing found in any image: try a lower threshold or other prompts"
    return BatchResult(images, zip_path, rows, note, res.coco)
