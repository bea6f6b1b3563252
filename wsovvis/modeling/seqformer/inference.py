"""Clip-wise inference on videos of any length, with query stitching over overlapping frames.

API for the training/evaluation code::

    from wsovvis.modeling.seqformer.inference import predict_video
    preds = predict_video(model, postprocessor, frames)       # frames: iterable of RGB uint8 [H, W, 3]
    # -> [{"score": float, "category_index": int, "segmentations": [RLE] * T}, ...]  sorted by score
    results = [{"video_id": vid, "category_id": ids[p["category_index"]], "score": p["score"],
                "segmentations": p["segmentations"]} for p in preds]

``postprocessor.preset`` picks the procedure (`wsovvis.modeling.seqformer.presets`): ``default``
(below), ``vnext`` or ``original`` (the whole video in one pass, as those code bases evaluate).

Keyword options default to the postprocessor's (from ``cfg.model.inference``): ``test_size`` /
``max_size`` (detectron2's ResizeShortestEdge), ``clip_length`` / ``clip_overlap`` (frames per
forward pass and frames shared by consecutive clips; a clip_length at least the video length
runs the whole video at once like VNext), ``top_k`` queries per clip, ``max_tracks``.

Memory does not grow with video length: frames are consumed from the iterable as they come (at most
``clip_length`` resized frames are held), each track keeps stride-4 logits only for frames a later
clip may still update, and every frame is binarised and RLE-encoded (``wsovvis.data.rle``) as soon
as no later clip covers it. Only the RLE strings accumulate.

Stitching (VNext ``CLIP_MATCHING``): each clip's top-k queries are matched to the open tracks by
the soft IoU of their sigmoid masks over the frames both cover (Hungarian, IoU > ``match_threshold``);
unmatched queries open new tracks (up to ``max_tracks``). A track's mask logits are averaged over
the clips that cover a frame and its class probabilities over its clips; each frame a track was
not seen in gets an empty mask.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from wsovvis.data import rle as rle_utils
from wsovvis.data.transforms import resized_hw as resized_shape  # one resize rule for training and test sizes
from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer.model import SIZE_DIVISIBILITY
from wsovvis.modeling.seqformer.postprocess import SeqFormerPostProcessor
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def prepare_frame(frame, size: tuple[int, int], index: int) -> torch.Tensor:
    """RGB uint8 ``[H, W, 3]`` (numpy or torch) -> float ``[3, h, w]`` 0..255 resized (antialiased bilinear)."""
    t = torch.as_tensor(np.asarray(frame))
    if t.dim() != 3 or t.shape[2] != 3:
        raise WsovvisError(f"frame {index}: expected an RGB array [H, W, 3], got shape {tuple(t.shape)}")
    x = t.permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 255)
    return x[0]


@dataclass
class _Track:
    first_frame: int
    prob_sum: torch.Tensor
    n_clips: int = 1
    logit_sum: dict[int, torch.Tensor] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)
    rles: list = field(default_factory=list)


class ClipStitcher:
    """Accumulates per-clip query predictions into tracks and emits RLE frames as they finalise.

    ``add_clip(start, probs [k, K], logits [k, Tc, hv, wv])`` then ``finalize_until(f)`` for frames
    ``< f`` no later clip will touch; ``results()`` after the last frame.
    """

    def __init__(self, post: SeqFormerPostProcessor, image_size, orig_size, max_tracks: int, match_threshold: float):
        self.post = post
        self.image_size = tuple(image_size)
        self.orig_size = tuple(orig_size)
        self.max_tracks = max_tracks
        self.match_threshold = match_threshold
        self.tracks: list[_Track] = []
        self.next_frame = 0  # frames below this are final
        self.dropped = 0
        h0, w0 = self.orig_size
        self._empty = rle_utils.encode(np.zeros((h0, w0), dtype=bool))

    def _soft_iou(self, probs_q: torch.Tensor, frames: list[int]) -> torch.Tensor:
        """``probs_q [k, F, hv, wv]`` sigmoid masks vs every track's mean over ``frames`` -> ``[n_tracks, k]``."""
        tracks = []
        for tr in self.tracks:
            maps = [
                (tr.logit_sum[f] / tr.count[f]).sigmoid() if f in tr.count else torch.zeros_like(probs_q[0, 0])
                for f in frames
            ]
            tracks.append(torch.stack(maps))
        t = torch.stack(tracks).flatten(1)  # [n, F*hv*wv]
        q = probs_q.flatten(1)
        inter = t @ q.T
        union = t.sum(1, keepdim=True) + q.sum(1)[None] - inter
        return inter / union.clamp(min=1e-6)

    def add_clip(self, start: int, probs: torch.Tensor, logits: torch.Tensor) -> None:
        probs, logits = probs.float().cpu(), logits.float().cpu()
        k, Tc = logits.shape[:2]
        frames = list(range(start, start + Tc))
        overlap = [f for f in frames if f >= self.next_frame and any(f in tr.count for tr in self.tracks)]
        assign: dict[int, int] = {}
        if overlap and self.tracks and k:
            rel = [f - start for f in overlap]
            iou = self._soft_iou(logits[:, rel].sigmoid(), overlap)
            rows, cols = linear_sum_assignment(iou.numpy(), maximize=True)
            assign = {int(c): int(r) for r, c in zip(rows, cols) if iou[r, c] > self.match_threshold}
        for q in range(k):
            if q in assign:
                tr = self.tracks[assign[q]]
                tr.prob_sum += probs[q]
                tr.n_clips += 1
            elif len(self.tracks) < self.max_tracks:
                tr = _Track(first_frame=start, prob_sum=probs[q].clone())
                # frames finalised before this track existed are empty for it
                tr.rles = [self._empty] * self.next_frame
                self.tracks.append(tr)
            else:
                self.dropped += 1
                continue
            for i, f in enumerate(frames):
                if f < self.next_frame:
                    continue  # already emitted; a final clip may reach back over them
                if f in tr.count:
                    tr.logit_sum[f] += logits[q, i]
                    tr.count[f] += 1
                else:
                    tr.logit_sum[f] = logits[q, i].clone()
                    tr.count[f] = 1

    def finalize_until(self, end: int) -> None:
        """Binarise and RLE-encode frames ``[next_frame, end)`` of every track, then forget their logits."""
        for f in range(self.next_frame, end):
            have = [tr for tr in self.tracks if f in tr.count]
            if have:
                logits = torch.stack([tr.logit_sum.pop(f) / tr.count.pop(f) for tr in have])
                masks = self.post.binarize(logits, self.image_size, self.orig_size).numpy()
                for tr, r in zip(have, rle_utils.encode_stack(masks)):
                    tr.rles.append(r)
            for tr in self.tracks:
                if len(tr.rles) == f:
                    tr.rles.append(self._empty)
        self.next_frame = max(self.next_frame, end)

    def results(self) -> list[dict]:
        if self.dropped:
            log.info("clip stitching: %d clip queries found no track (max_tracks=%d)", self.dropped, self.max_tracks)
        if not self.tracks:
            return []
        scores = torch.stack([tr.prob_sum / tr.n_clips for tr in self.tracks])
        out = [
            {"score": s, "category_index": c, "segmentations": self.tracks[r].rles}
            for r, s, c in self.post.expand_classes(scores)
        ]
        return sorted(out, key=lambda p: -p["score"])


@torch.inference_mode()
def predict_video(
    model,
    postprocessor: SeqFormerPostProcessor,
    frames: Iterable,
    *,
    test_size: int | None = None,
    max_size: int | None = None,
    clip_length: int | None = None,
    clip_overlap: int | None = None,
    top_k: int | None = None,
    max_tracks: int | None = None,
) -> list[dict]:
    """Predict instance tubes of one video.

    Args:
        model: a `SeqFormer` (run in eval mode, its previous mode restored afterwards; its device is used).
        postprocessor: `SeqFormerPostProcessor` (thresholds and default options).
        frames: iterable of RGB uint8 ``[H, W, 3]`` frames of one size (a generator is fine).

    Returns:
        ``[{"score", "category_index", "segmentations": [compressed RLE of size [H, W]] * T}]``,
        sorted by score; ``category_index`` is the contiguous class index (map it to dataset ids).
    """
    p = postprocessor
    test_size = test_size or p.test_size
    max_size = max_size or p.max_size
    top_k = top_k or p.top_k
    preset = getattr(p, "preset", "default")
    if preset in ("vnext", "original"):
        was_training = model.training
        model.eval()
        try:
            return _predict_whole(model, p, frames, preset, test_size, max_size, top_k)
        finally:
            model.train(was_training)
    clip_length = clip_length or p.clip_length
    clip_overlap = p.clip_overlap if clip_overlap is None else clip_overlap
    max_tracks = max_tracks or p.max_tracks
    if not 0 < clip_overlap < clip_length:
        raise WsovvisError(f"inference: clip_overlap {clip_overlap} must be in 1..clip_length-1 ({clip_length - 1})")
    was_training = model.training
    model.eval()
    try:
        return _predict(model, p, frames, test_size, max_size, clip_length, clip_overlap, top_k, max_tracks)
    finally:
        model.train(was_training)


def _rgb_frames(frames: Iterable):
    """``(index, array)`` of each frame, lazily; the first must be ``[H, W, 3]`` and every later one its size."""
    orig = None
    for i, frame in enumerate(frames):
        arr = np.asarray(frame)
        if orig is None:
            if arr.ndim != 3:
                raise WsovvisError(f"frame 0: expected an RGB array [H, W, 3], got shape {arr.shape}")
            orig = arr.shape[:2]
        elif arr.shape[:2] != orig:
            raise WsovvisError(f"frame {i}: size {arr.shape[:2]} differs from the first frame's {orig}")
        yield i, arr


def _read_all(frames: Iterable, size_of) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """Every frame resized -> ``[T, 3, h, w]`` float 0..255, the original and the resized size."""
    clip, orig, size = [], None, None
    for i, arr in _rgb_frames(frames):
        if orig is None:
            orig = arr.shape[:2]
            size = size_of(*orig)
        clip.append(prepare_frame(arr, size, i))
    if orig is None:
        raise WsovvisError("predict_video: the video has no frames")
    return torch.stack(clip), tuple(orig), tuple(size)


def _predict_whole(model, p, frames, preset: str, test_size: int, max_size: float, top_k: int) -> list[dict]:
    """``vnext`` / ``original`` presets: the whole video in one forward pass (see `presets`)."""
    from wsovvis.modeling.seqformer.presets import torchvision_resized_shape

    device = next(model.parameters()).device
    if preset == "original":
        def size_of(h, w):
            return torchvision_resized_shape(h, w, test_size)
    else:
        def size_of(h, w):
            return resized_shape(h, w, test_size, max_size)
    clip, orig, (h, w) = _read_all(frames, size_of)
    div = getattr(model, "size_divisibility", SIZE_DIVISIBILITY)
    hp, wp = -(-h // div) * div, -(-w // div) * div
    images = torch.zeros(1, clip.shape[0], 3, hp, wp, device=device)
    images[0, :, :, :h, :w] = clip.to(device)
    del clip
    outputs = model(images, torch.tensor([[h, w]], device=device))
    T = images.shape[1]
    del images
    out = []
    if preset == "original":
        picks = p.select_flat(outputs, 0, top_k)
        queries = sorted({q for q, _, _ in picks})
        if not queries:
            return []
        from wsovvis.modeling.seqformer.mask_head import dynamic_mask_logits

        qi = torch.tensor(queries, device=device)
        logits = dynamic_mask_logits(outputs["mask_feats"][0], outputs["mask_params"][0, qi],
                                     outputs["mask_refs"][0, qi], outputs["image_sizes"][0])  # [k, T, h4, w4]
        masks = {q: p.resize_straight(logits[j], orig).cpu().numpy() for j, q in enumerate(queries)}
        for q, score, c in picks:
            m = masks[q]
            if not m.any():
                continue  # the original skips queries whose masks are empty in every frame
            # ... and writes None segmentations (frames without a mask) for scores below 0.001
            segs = rle_utils.encode_stack(m) if score >= 0.001 else [None] * m.shape[0]
            out.append({"score": score, "category_index": c, "segmentations": segs})
    else:
        probs, idx = p.select(outputs, 0, top_k)
        logits = p.clip_mask_logits(outputs, 0, idx)  # [k, T, hv, wv]
        masks = p.binarize(logits.flatten(0, 1), (h, w), orig).view(len(idx), T, *orig).cpu().numpy()
        rles = [rle_utils.encode_stack(m) for m in masks]
        out = [{"score": s, "category_index": c, "segmentations": rles[r]} for r, s, c in p.expand_classes(probs)]
    return sorted(out, key=lambda d: -d["score"])


def _predict(model, p, frames, test_size, max_size, clip_length, clip_overlap, top_k, max_tracks) -> list[dict]:
    stride = clip_length - clip_overlap
    device = next(model.parameters()).device

    buffer: deque[torch.Tensor] = deque(maxlen=clip_length)
    stitcher: ClipStitcher | None = None
    orig = size = None
    next_start, last_end, count = 0, 0, 0

    def run(start: int, end: int) -> None:
        clip = list(buffer)[len(buffer) - (count - start) : len(buffer) - (count - end)]
        h, w = size
        hp, wp = -(-h // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY, -(-w // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
        images = torch.zeros(1, len(clip), 3, hp, wp, device=device)
        images[0, :, :, :h, :w] = torch.stack(clip).to(device)
        outputs = model(images, torch.tensor([[h, w]], device=device))
        probs, idx = p.select(outputs, 0, top_k)
        stitcher.add_clip(start, probs, p.clip_mask_logits(outputs, 0, idx))

    for i, arr in _rgb_frames(frames):
        if orig is None:
            orig = arr.shape[:2]
            size = resized_shape(*orig, test_size, max_size)
            stitcher = ClipStitcher(p, size, orig, max_tracks, p.match_threshold)
        buffer.append(prepare_frame(arr, size, i))
        count = i + 1
        if count == next_start + clip_length:
            run(next_start, count)
            last_end = count
            next_start += stride
            stitcher.finalize_until(next_start)
    if orig is None:
        raise WsovvisError("predict_video: the video has no frames")
    if last_end < count:
        run(max(0, count - clip_length), count)
    stitcher.finalize_until(count)
    return stitcher.results()
