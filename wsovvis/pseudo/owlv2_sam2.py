"""The ``owlv2_sam2`` engine: text-prompted, category-labelled tubes (OWLv2 boxes -> SAM2 video tracking).

Per video, with key frames every ``key_every`` frames (and the first):

1. detect on the key frame (prompts -> classes, thresholds, NMS as for images:
   `wsovvis.autolabel.images.filter_detections`);
2. segment the detections on the key frame (a one-frame SAM2 session) and match them to the
   tracked objects by mask IoU (Hungarian, ``match_iou``): a matched detection re-anchors that
   track with its fresh box and keeps its id; a detection that overlaps a track by at least
   ``match_iou`` without winning it is a duplicate and dropped;
3. track every object once, in one SAM2 session over the segment from this key frame to the next
   (inclusive): re-anchored tracks and new objects prompted by their box, tracks not re-detected
   by their mask on the key frame;
4. an unmatched detection either revives a track lost in the last ``max_lost`` key frames whose
   last mask it overlaps (IoU >= ``revive_iou``, same class; carries ids through occlusions) or
   starts a new track; both are also tracked backwards (the clip reversed) to the previous key
   frame, so an object entering between key frames starts where it entered;
5. a track whose mask SAM2 loses (empty) ends there (it may be revived later).

Memory stays bounded on long videos: each SAM2 session holds at most ``key_every + 1`` frames
(frames stay on the CPU; `wsovvis.autolabel.models.Sam2VideoTracker`), and tube masks are held as
compressed RLE (`RleMasks`). A track's category is the
class with the largest summed detection score over its key frames; its score is the mean of those
detection scores. Tubes carry ``category_id`` / ``category_name`` (written to ``tracks.json`` by
the runner).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from wsovvis.autolabel.images import AutolabelParams, filter_detections
from wsovvis.autolabel.models import Detector, VideoSegmenter
from wsovvis.autolabel.prompts import PromptSet
from wsovvis.data import rle as rle_utils
from wsovvis.pseudo.cleanup import Tube, resolve_overlaps
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.linking import mask_iou_matrix
from wsovvis.pseudo.maskcut import EngineResult
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

_DET_BASE = 1_000_000  # session object ids of this key frame's detections (tracks keep ids below)


class RleMasks(MutableMapping):
    """frame index -> bool mask ``[h, w]``, held as compressed RLE (decoded on access).

    A tube's masks over a long video would otherwise take ``frames x h x w`` bytes each (a
    1,000-frame 480p video with 20 tracks: ~8 GB); RLE keeps them at a few hundred bytes a frame.
    """

    def __init__(self, items: dict[int, np.ndarray] | None = None):
        self._rle: dict[int, dict] = {}
        for t, m in (items or {}).items():
            self[t] = m

    def __getitem__(self, t: int) -> np.ndarray:
        return rle_utils.decode(self._rle[t])

    def __setitem__(self, t: int, mask: np.ndarray) -> None:
        self._rle[t] = rle_utils.encode(np.asarray(mask, dtype=bool))

    def __delitem__(self, t: int) -> None:
        del self._rle[t]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rle)

    def __len__(self) -> int:
        return len(self._rle)


@dataclass
class _Track:
    tid: int
    masks: RleMasks = field(default_factory=RleMasks)
    det_scores: list[float] = field(default_factory=list)
    votes: dict[int, float] = field(default_factory=dict)
    alive: bool = True
    lost_key: int = -1
    last_mask: np.ndarray | None = None
    last_t: int = -1

    def vote(self, cid: int, score: float) -> None:
        self.det_scores.append(score)
        self.votes[cid] = self.votes.get(cid, 0.0) + score

    @property
    def category(self) -> int:
        return max(self.votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]


class Owlv2Sam2Engine:
    """``engine(video) -> EngineResult`` (see the module docstring)."""

    name = "owlv2_sam2"

    def __init__(self, detector: Detector, tracker: VideoSegmenter, prompts: PromptSet, params: AutolabelParams,
                 key_every: int = 5, match_iou: float = 0.5, revive_iou: float = 0.2, max_lost: int = 3,
                 min_len: int = 1, short_side: int = 480):
        if key_every < 1:
            raise ValueError(f"key_every must be >= 1, got {key_every}")
        self.detector = detector
        self.tracker = tracker
        self.prompts = prompts
        self.params = params
        self.key_every = key_every
        self.match_iou = match_iou
        self.revive_iou = revive_iou
        self.max_lost = max_lost
        self.min_len = min_len
        self.short_side = short_side

    @property
    def frame_spec(self) -> tuple[int, int, int]:
        return self.short_side, 1, 0

    @property
    def categories(self) -> list[dict]:
        return [dict(c) for c in self.prompts.categories]

    def _keep(self, tr: _Track, seq: np.ndarray, start: int, stop: int, key_index: int) -> bool:
        """Store ``seq[j]`` at frame ``start + j`` for frames < ``stop``; a first empty mask ends the track."""
        for j in range(stop - start):
            m = seq[j]
            if not m.any():
                tr.alive, tr.lost_key = False, key_index
                return False
            tr.masks[start + j] = m
            tr.last_mask, tr.last_t = m, start + j
        return True

    def __call__(self, video: Video) -> EngineResult:
        frames = video.frames
        n = len(video)
        keys = list(range(0, n, self.key_every))
        tracks: list[_Track] = []
        carry: dict[int, np.ndarray] = {}  # track id -> its mask on the current key frame
        stats = {"key_frames": len(keys), "detections": 0, "matched": 0, "revived": 0, "duplicates": 0}
        for i, kf in enumerate(keys):
            end = keys[i + 1] if i + 1 < len(keys) else n - 1
            stop = end if i + 1 < len(keys) else n  # the next key frame is stored by its own segment
            dets, cls = filter_detections(self.detector.detect(frames[kf], list(self.prompts.prompts)),
                                          self.prompts, self.params)
            stats["detections"] += len(dets)
            # the detections' masks on the key frame (a one-frame session) decide which track each
            # continues; only then is every object tracked over the segment, once
            boxes = {_DET_BASE + j: dets.boxes[j] for j in range(len(dets))}
            first = self.tracker.propagate(frames[kf:kf + 1], boxes) if boxes else {}
            det_masks = {j: first[_DET_BASE + j][0] for j in range(len(dets)) if first[_DET_BASE + j][0].any()}
            det_js = list(det_masks)
            by_id = {tr.tid: tr for tr in tracks}
            car_ids = list(carry)
            iou = mask_iou_matrix([carry[c] for c in car_ids], [det_masks[j] for j in det_js])
            assigned: dict[int, int] = {}  # det j -> track id
            if iou.size:
                rows, cols = linear_sum_assignment(-iou)
                for r, c in zip(rows, cols):
                    if iou[r, c] >= self.match_iou:
                        assigned[det_js[c]] = car_ids[r]
            prompts: dict[int, np.ndarray] = dict(carry)  # tracks not re-detected continue from their mask
            fresh: list[int] = []
            for c, j in enumerate(det_js):
                if j in assigned:
                    tid = assigned[j]
                    prompts[tid] = dets.boxes[j]  # re-anchored on the fresh box
                    by_id[tid].vote(int(cls[j]), float(dets.scores[j]))
                    stats["matched"] += 1
                    continue
                if iou.size and iou[:, c].max() >= self.match_iou:
                    stats["duplicates"] += 1
                    continue
                lost = [tr for tr in tracks if not tr.alive and i - tr.lost_key <= self.max_lost
                        and tr.category == int(cls[j]) and tr.tid not in prompts]
                scores = mask_iou_matrix([det_masks[j]], [tr.last_mask for tr in lost])[0] if lost else np.zeros(0)
                if len(scores) and scores.max() >= self.revive_iou:
                    tr = lost[int(np.argmax(scores))]
                    tr.alive = True
                    stats["revived"] += 1
                else:
                    tr = _Track(tid=len(tracks) + 1)
                    tracks.append(tr)
                    by_id[tr.tid] = tr
                tr.vote(int(cls[j]), float(dets.scores[j]))
                prompts[tr.tid] = dets.boxes[j]
                fresh.append(tr.tid)
            out = self.tracker.propagate(frames[kf:end + 1], prompts) if prompts else {}
            seqs: dict[int, np.ndarray] = {tid: out[tid] for tid in prompts}
            if fresh and i > 0:
                # backwards from this key frame to the previous one, for objects that entered in between
                prev = keys[i - 1]
                back = self.tracker.propagate(frames[kf:prev:-1], {t: seqs[t][0] for t in fresh})
                for tid in fresh:
                    tr, seq = by_id[tid], back[tid]
                    for j in range(1, kf - prev):
                        t = kf - j
                        if t <= tr.last_t or not seq[j].any():
                            break
                        tr.masks[t] = seq[j]
            carry = {}
            for tid, seq in seqs.items():
                tr = by_id[tid]
                if self._keep(tr, seq, kf, stop, i) and i + 1 < len(keys):
                    if seq[end - kf].any():
                        carry[tid] = seq[end - kf]
                    else:
                        tr.alive, tr.lost_key = False, i + 1
        tubes = []
        names = self.prompts.names
        for tr in tracks:
            if len(tr.masks) < self.min_len:
                continue
            score = float(np.mean(tr.det_scores))
            tb = Tube(masks=tr.masks, scores=dict.fromkeys(tr.masks, score), embedding=np.zeros(1, np.float32),
                      score=score)
            tb.category_id = tr.category
            tb.category_name = names[tr.category]
            tubes.append(tb)
        resolve_overlaps(tubes)
        tubes = [tb for tb in tubes if len(tb.masks) >= self.min_len]
        tubes.sort(key=lambda tb: (tb.first(), -tb.score))
        for k, tb in enumerate(tubes, 1):
            tb.tube_id = k
        stats["tracks"] = len(tracks)
        return EngineResult(tubes=tubes, num_frames=n, stats=stats)


def build_owlv2_sam2(cfg) -> Owlv2Sam2Engine:
    """``cfg`` (Namespace or dict): ``vocab``, ``prompt_map``, ``detector``, ``segmenter``, ``device``,
    ``threshold``, ``class_threshold``, ``nms``, ``agnostic_nms``, ``max_detections``, ``min_box_size``,
    ``key_every``, ``short_side``, ``min_len``."""
    from types import SimpleNamespace

    from wsovvis.autolabel.cli import params_from_args, require
    from wsovvis.autolabel.models import load_detector, load_video_segmenter
    from wsovvis.autolabel.prompts import load_prompt_set

    defaults = {"prompt_map": None, "device": None, "threshold": 0.1, "class_threshold": [], "nms": 0.5,
                "agnostic_nms": None, "max_detections": 100, "min_box_size": 0.0, "key_every": 5, "short_side": None,
                "min_len": 3, "vocab": None, "detector": None, "segmenter": None}
    get = (lambda k: cfg.get(k)) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    args = SimpleNamespace(**{k: (v if get(k) is None else get(k)) for k, v in defaults.items()})
    require(args, "vocab", "detector", "segmenter")
    prompts = load_prompt_set(args.vocab, args.prompt_map)
    params = params_from_args(args, prompts, "segment")
    detector = load_detector(args.detector, args.device)
    tracker = load_video_segmenter(args.segmenter, args.device)
    engine = Owlv2Sam2Engine(detector, tracker, prompts, params, key_every=int(args.key_every),
                             min_len=int(args.min_len),
                             short_side=int(args.short_side or 480))
    log.info("engine owlv2_sam2: %d prompt(s) for %d class(es), key frame every %d", len(prompts),
             len(prompts.categories), engine.key_every)
    return engine
