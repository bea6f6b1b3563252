"""Detector / segmenter interfaces and the real transformers models behind them.

``Detector.detect(image uint8 [H, W, 3] RGB, prompts) -> Detections`` with ``boxes`` float32
``[N, 4]`` (x1, y1, x2, y2 in pixels of the original image), ``scores`` float32 ``[N]`` and
``labels`` int64 ``[N]`` (index into ``prompts``).

``Segmenter.segment(image, boxes float32 [N, 4]) -> bool [N, H, W]``: one mask per box.

``VideoSegmenter.propagate(frames uint8 [T, H, W, 3], prompts) -> {obj_id: bool [T, H, W]}``:
objects prompted on ``frames[0]`` (a box float ``[4]`` or a mask bool ``[H, W]`` each) tracked
through the clip; a lost object has empty masks. Backward tracking = the caller reverses the clip.

`load_detector` / `load_segmenter` / `load_video_segmenter` take a folder written by
``save_pretrained`` (model + processor) or ``standin:colour`` (the deterministic stand-ins of
`wsovvis.autolabel.standins`). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

STANDIN_PREFIX = "standin:"
DETECTOR_TYPES = ("owlv2",)
SEGMENTER_TYPES = ("sam2", "sam2_video")
VIDEO_SEGMENTER_TYPES = ("sam2_video",)
SEGMENT_BATCH = 32  # boxes per SAM2 mask-decoder call: bounds memory with many objects


@dataclass
class Detections:
    """``boxes`` float32 ``[N, 4]`` xyxy pixels, ``scores`` float32 ``[N]``, ``labels`` int64 ``[N]`` (prompt index)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError(f"Detections: {len(self.boxes)} boxes, {len(self.scores)} scores, "
                             f"{len(self.labels)} labels")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, idx) -> Detections:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return Detections(self.boxes[idx], self.scores[idx], self.labels[idx])


class Detector(Protocol):
    def detect(self, image: np.ndarray, prompts: Sequence[str]) -> Detections: ...


class Segmenter(Protocol):
    def segment(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


class VideoSegmenter(Protocol):
    def propagate(self, frames: np.ndarray, prompts: dict[int, np.ndarray]) -> dict[int, np.ndarray]: ...


def device_and_dtype(device: str | None = None):
    """-> (torch device string, torch dtype): cuda -> float16, mps -> float32, cpu -> float32.

    ``device`` (``--device``) overrides the choice of device; the dtype follows the device.
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind = str(device).split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise WsovvisError(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise WsovvisError(f"--device {device}: CUDA is not available on this machine")
    return str(device), (torch.float16 if kind == "cuda" else torch.float32)


def model_type(path: str | os.PathLike, flag: str, allowed: Sequence[str]) -> str:
    """``model_type`` of a ``save_pretrained`` folder; raises naming ``flag`` when missing or of another type."""
    p = Path(path)
    if not p.is_dir():
        raise WsovvisError(f"{p}: {flag} folder does not exist (expected a folder written by save_pretrained; "
                           "nothing is downloaded)")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise WsovvisError(f"{p}: {flag} folder has no config.json (expected a folder written by save_pretrained)")
    try:
        mtype = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as e:
        raise WsovvisError(f"{cfg}: {flag} config.json is not a JSON object ({e})") from e
    if mtype not in allowed:
        raise WsovvisError(f"{cfg}: {flag} holds a {mtype!r} model; expected {' or '.join(map(repr, allowed))}")
    return mtype


def _load_processor(path: Path, flag: str):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise WsovvisError(f"{path}: {flag} folder has no usable processor files ({e}); "
                           "save the processor with save_pretrained next to the model") from e


class Owlv2Detector:
    """`Detector` over ``Owlv2ForObjectDetection`` + ``Owlv2Processor``.

    The text queries are embedded once per prompt list and reused for every image (the model's
    own forward re-encodes them per image: with a large vocabulary, e.g. LV-VIS's 1,196 classes,
    that costs as much as the image encoder); per image only the vision tower and the heads run.
    ``cache_text=False`` calls the model's forward instead (the two agree, see the tests).

    The processor pads the image to a square (bottom/right) before resizing; its post-processor
    scales boxes by the padded side, so boxes come back in original pixels; they are clipped to the
    image here. OWLv2 applies no NMS (done by the caller). ``threshold`` is the floor at which
    boxes are returned (the caller applies per-class thresholds above it).
    """

    def __init__(self, model, processor, device: str = "cpu", dtype=None, threshold: float = 0.0,
                 cache_text: bool = True):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.threshold = threshold
        self.cache_text = cache_text
        self._queries: tuple[tuple[str, ...], object, object] | None = None

    def _tokens(self, prompts: Sequence[str]):
        # Queries padded to the text model's length (16 for OWLv2); a saved tokenizer may not record it.
        max_len = int(self.model.config.text_config.max_position_embeddings)
        tok = self.processor.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=max_len,
                                       return_tensors="pt")
        return tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)

    def query_embeddings(self, prompts: Sequence[str]):
        """-> (``[Q, D]`` unit text embeddings, ``[Q]`` bool valid mask), as the model's forward makes them."""
        import torch

        key = tuple(prompts)
        if self._queries is None or self._queries[0] != key:
            ids, mask = self._tokens(prompts)
            owl = self.model.owlv2
            with torch.inference_mode():
                pooled = owl.text_model(input_ids=ids, attention_mask=mask).pooler_output
                emb = owl.text_projection(pooled)
                emb = emb / torch.linalg.norm(emb, ord=2, dim=-1, keepdim=True)
            self._queries = (key, emb, ids[:, 0] > 0)
        return self._queries[1], self._queries[2]

    def raw_outputs(self, image: np.ndarray, prompts: Sequence[str]):
        """-> (logits ``[1, P, Q]``, pred_boxes ``[1, P, 4]`` cxcywh relative to the padded square), float32."""
        import torch

        pixels = self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.dtype)
        with torch.inference_mode():
            if not self.cache_text:
                ids, mask = self._tokens(prompts)
                out = self.model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
                return out.logits.float(), out.pred_boxes.float()
            queries, valid = self.query_embeddings(prompts)
            fmap = self.model.image_embedder(pixel_values=pixels)[0]
            b, gh, gw, d = fmap.shape
            feats = fmap.reshape(b, gh * gw, d)
            logits, _ = self.model.class_predictor(feats, queries[None], valid[None])
            boxes = self.model.box_predictor(feats, fmap)
        return logits.float(), boxes.float()

    def detect(self, image: np.ndarray, prompts: Sequence[str]) -> Detections:
        from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

        image = _check_image(image)
        if not prompts:
            return Detections.empty()
        h, w = image.shape[:2]
        logits, boxes = self.raw_outputs(image, prompts)
        out = Owlv2ObjectDetectionOutput(logits=logits, pred_boxes=boxes)
        res = self.processor.post_process_grounded_object_detection(out, threshold=self.threshold,
                                                                    target_sizes=[(h, w)])[0]
        boxes = res["boxes"].cpu().numpy().astype(np.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return Detections(boxes, res["scores"].cpu().numpy(), res["labels"].cpu().numpy())


class Sam2Segmenter:
    """`Segmenter` over ``Sam2Model`` + ``Sam2Processor``: one mask per box (single-mask output),
    boxes in batches of `SEGMENT_BATCH`, image embedding computed once per image."""

    def __init__(self, model, processor, device: str = "cpu", dtype=None, batch: int = SEGMENT_BATCH):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.batch = batch

    def segment(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import torch

        image = _check_image(image)
        h, w = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, h, w), bool)
        inputs = self.processor(images=[image], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        out = []
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(pixels)
            for s in range(0, len(boxes), self.batch):
                chunk = boxes[s:s + self.batch]
                prompt = self.processor(input_boxes=[chunk.tolist()], original_sizes=inputs["original_sizes"],
                                        return_tensors="pt")
                o = self.model(image_embeddings=emb, input_boxes=prompt["input_boxes"].to(self.device, self.dtype),
                               multimask_output=False)
                m = self.processor.post_process_masks(o.pred_masks.float().cpu(), inputs["original_sizes"])[0]
                out.append(m[:, 0].numpy().astype(bool))
        return np.concatenate(out, 0)


class Sam2VideoTracker:
    """`VideoSegmenter` over ``Sam2VideoModel`` + ``Sam2VideoProcessor``: one inference session per
    call (the caller passes short clips, so memory stays bounded); the clip's frames are stored on
    the CPU and only the frame being processed moves to the device."""

    def __init__(self, model, processor, device: str = "cpu", dtype=None):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype

    def propagate(self, frames: np.ndarray, prompts: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        import torch

        frames = np.asarray(frames)
        t, h, w = frames.shape[:3]
        if not prompts:
            return {}
        session = self.processor.init_video_session(
            video=list(frames), inference_device=self.device, video_storage_device="cpu",
            dtype=self.dtype or torch.float32)
        box_ids = [k for k, v in prompts.items() if np.asarray(v).shape == (4,)]
        mask_ids = [k for k in prompts if k not in box_ids]
        if box_ids:
            self.processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=0, obj_ids=box_ids,
                input_boxes=[[np.asarray(prompts[k], dtype=np.float32).tolist() for k in box_ids]])
        if mask_ids:
            self.processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=0, obj_ids=mask_ids,
                input_masks=[np.asarray(prompts[k]).astype(np.float32) for k in mask_ids])
        # Each add call replaces the session's list of objects with new inputs; all of them have some.
        session.obj_with_new_inputs = list(box_ids) + list(mask_ids)
        masks = {k: np.zeros((t, h, w), bool) for k in prompts}
        with torch.inference_mode():
            for o in self.model.propagate_in_video_iterator(inference_session=session, start_frame_idx=0,
                                                            max_frame_num_to_track=t):
                m = self.processor.post_process_masks([o.pred_masks.float().cpu()], [(h, w)], binarize=True)[0]
                ids = list(getattr(o, "object_ids", None) or session.obj_ids)
                for j, k in enumerate(ids):
                    if k in masks:
                        masks[k][o.frame_idx] = m[j, 0].numpy().astype(bool)
        return masks


def _check_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {a.dtype} {list(a.shape)}")
    return a if a.flags.writeable else a.copy()  # torch.from_numpy warns on read-only arrays (PIL's)


def _from_pretrained(cls, path: Path, flag: str, device: str, dtype):
    try:
        model = cls.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as e:
        raise WsovvisError(f"{path}: {flag} could not be loaded as {cls.__name__} ({e})") from e
    return model.to(device).eval()


def _load_model(path: str | os.PathLike, device: str | None, flag: str, types, standin, cls_name: str, wrap,
                what: str):
    """``standin:<name>`` -> ``standin(name)``; else the ``transformers`` class ``cls_name`` and its processor from
    a ``save_pretrained`` folder whose model type is one of ``types``, wrapped as ``wrap(model, processor, dev,
    dtype)``. Errors name ``flag``."""
    spec = str(path)
    if spec.startswith(STANDIN_PREFIX):
        return standin(spec[len(STANDIN_PREFIX):])
    model_type(path, flag, types)
    import transformers

    dev, dtype = device_and_dtype(device)
    processor = _load_processor(Path(path), flag)
    model = _from_pretrained(getattr(transformers, cls_name), Path(path), flag, dev, dtype)
    log.info("%s: %s from %s on %s (%s)", what, cls_name, path, dev, dtype)
    return wrap(model, processor, dev, dtype)


def _standin(name: str):
    """The stand-in factory ``name`` of `wsovvis.autolabel.standins` (imported on use)."""
    def make(spec: str):
        from wsovvis.autolabel import standins

        return getattr(standins, name)(spec)

    return make


def load_detector(path: str | os.PathLike, device: str | None = None) -> Detector:
    """``--detector``: an OWLv2 ``save_pretrained`` folder, or ``standin:colour``."""
    return _load_model(path, device, "--detector", DETECTOR_TYPES, _standin("standin_detector"),
                       "Owlv2ForObjectDetection", Owlv2Detector, "detector")


def load_segmenter(path: str | os.PathLike, device: str | None = None) -> Segmenter:
    """``--segmenter``: a SAM2 ``save_pretrained`` folder (``sam2`` or ``sam2_video``), or ``standin:colour``."""
    return _load_model(path, device, "--segmenter", SEGMENTER_TYPES, _standin("standin_segmenter"), "Sam2Model",
                       Sam2Segmenter, "segmenter")


def load_video_segmenter(path: str | os.PathLike, device: str | None = None) -> VideoSegmenter:
    """``--segmenter`` for videos: a ``sam2_video`` ``save_pretrained`` folder, or ``standin:colour``."""
    return _load_model(path, device, "--segmenter", VIDEO_SEGMENTER_TYPES, _standin("standin_video_segmenter"),
                       "Sam2VideoModel", Sam2VideoTracker, "video segmenter")
