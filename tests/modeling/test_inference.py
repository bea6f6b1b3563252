"""Post-processing, clip stitching and clip-wise video inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.modeling.helpers import build
from wsovvis.data import rle
from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer import inference
from wsovvis.modeling.seqformer.inference import ClipStitcher, predict_video, resized_shape
from wsovvis.modeling.seqformer.postprocess import SeqFormerPostProcessor


def test_resized_shape_follows_detectron2():
    assert resized_shape(480, 854, 360, 1333) == (360, 641)  # 854 * 0.75 = 640.5 rounds up
    assert resized_shape(854, 480, 360, 1333) == (641, 360)
    assert resized_shape(100, 2000, 360, 1333) == (67, 1333)  # capped by the longest edge
    assert resized_shape(96, 128, 96, 160) == (96, 128)


def test_binarize_upsamples_crops_and_resizes_nearest():
    post = SeqFormerPostProcessor(mask_threshold=0.5)
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, :2, :2] = 10.0  # top-left 8x8 pixels of the 12x16 resized frame
    masks = post.binarize(logits, image_size=(10, 14), orig_size=(20, 28))
    assert masks.shape == (1, 20, 28) and masks.dtype == torch.bool
    # in the 10x14 frame rows/cols < 8 are on (up to the bilinear edge at 7.5), then x2 nearest
    assert masks[0, :14, :14].all() and not masks[0, 18:, :].any() and not masks[0, :, 18:].any()


def test_expand_classes_multi_and_single():
    scores = torch.tensor([[0.9, 0.2, 0.01], [0.04, 0.03, 0.5]])
    multi = SeqFormerPostProcessor(multi_cls=True, cls_threshold=0.05).expand_classes(scores)
    assert [(r, c) for r, _, c in multi] == [(0, 0), (0, 1), (1, 2)]
    single = SeqFormerPostProcessor(multi_cls=False).expand_classes(scores)
    assert [(r, round(s, 2), c) for r, s, c in single] == [(0, 0.9, 0), (1, 0.5, 2)]


def square_logits(T: int, h: int, w: int, boxes) -> torch.Tensor:
    """Stride-4 logits ``[T, h, w]``: +8 inside ``boxes[t] = (y0, x0, y1, x1)`` cells, -8 elsewhere."""
    out = torch.full((T, h, w), -8.0)
    for t, (y0, x0, y1, x1) in enumerate(boxes):
        out[t, y0:y1, x0:x1] = 8.0
    return out


def test_stitcher_links_queries_across_clips_and_starts_late_tracks():
    post = SeqFormerPostProcessor(multi_cls=False)
    H = W = 32  # resized = original size; stride-4 maps are 8x8 (+1 cell kept -> 9x9 is not needed here)
    st = ClipStitcher(post, (H, W), (H, W), max_tracks=10, match_threshold=0.01)
    # object A moves right one cell per frame; object B sits still; C appears in the last clip only
    a = [(0, t, 2, t + 2) for t in range(8)]
    b = [(5, 5, 8, 8)] * 8
    c = [(0, 6, 2, 8)] * 8
    K = 3
    clips = [(0, [a, b], [0, 1]), (2, [b, a], [1, 0]), (4, [a, c, b], [0, 2, 1])]  # query order shuffles
    for start, objs, classes in clips:
        logits = torch.stack([square_logits(4, 8, 8, o[start : start + 4]) for o in objs])
        probs = torch.full((len(objs), K), 0.01)
        probs[torch.arange(len(objs)), torch.tensor(classes)] = 0.9
        st.add_clip(start, probs, logits)
        st.finalize_until(start + 2 if start < 4 else 8)
    res = st.results()
    assert len(res) == 3 and all(len(p["segmentations"]) == 8 for p in res)
    by_class = {p["category_index"]: p for p in res}
    for cls, obj in ((0, a), (1, b)):
        for t in range(8):
            y0, x0, y1, x1 = obj[t]
            expect = np.zeros((H, W), bool)
            expect[4 * y0 : 4 * y1, 4 * x0 : 4 * x1] = True
            got = rle.decode(by_class[cls]["segmentations"][t])
            assert (got != expect).sum() <= 4 * (y1 - y0 + x1 - x0), (cls, t)  # only bilinear edges may differ
    late = by_class[2]["segmentations"]
    assert all(rle.area(r) == 0 for r in late[:4]) and all(rle.area(r) > 0 for r in late[4:])
    assert abs(by_class[0]["score"] - 0.9) < 1e-6


@pytest.fixture(scope="module")
def tiny():
    # an untrained head scores ~0.01 everywhere: keep every (query, class) pair
    model, _, post = build("seqformer_tiny", seed=3, **{"inference.cls_threshold": 0.0})
    return model.eval(), post


def video(T: int = 7, H: int = 96, W: int = 128) -> list[np.ndarray]:
    g = np.random.default_rng(0)
    frames = []
    for t in range(T):
        f = np.full((H, W, 3), 30, np.uint8)
        f[20 + t : 50 + t, 10 + 3 * t : 40 + 3 * t] = (220, 40, 40)
        f += g.integers(0, 10, f.shape, dtype=np.uint8)
        frames.append(f)
    return frames


def test_whole_video_in_one_clip_equals_the_postprocessor(tiny):
    model, post = tiny
    frames = video(T=5)
    preds = predict_video(model, post, iter(frames), clip_length=8, clip_overlap=2)
    images = torch.stack([torch.as_tensor(f).permute(2, 0, 1).float() for f in frames])[None]
    with torch.no_grad():
        out = model(images, torch.tensor([[96, 128]]))
    direct = post(out, [(96, 128)])[0]
    assert len(preds) == len(direct) > 0
    direct = sorted(direct, key=lambda p: -p["score"])
    for p, d in zip(preds, direct):
        assert abs(p["score"] - d["score"]) < 1e-5 and p["category_index"] == d["category_index"]
        decoded = np.stack([rle.decode(r) for r in p["segmentations"]])
        assert np.array_equal(decoded, d["masks"].numpy())
        assert all(r["size"] == [96, 128] and isinstance(r["counts"], str) for r in p["segmentations"])


def test_clip_wise_inference_keeps_memory_bounded(tiny, monkeypatch):
    model, post = tiny
    open_frames = []
    real_add = ClipStitcher.add_clip

    def add_clip(self, start, probs, logits):
        real_add(self, start, probs, logits)
        open_frames.append(max(len(tr.count) for tr in self.tracks))

    monkeypatch.setattr(ClipStitcher, "add_clip", add_clip)
    pulled = []

    def frames():
        for i, f in enumerate(video(T=11, H=48, W=64)):
            pulled.append(i)
            yield f

    preds = predict_video(model, post, frames(), clip_length=4, clip_overlap=2, test_size=48, max_size=64)
    assert len(open_frames) == 5  # clips at 0, 2, 4, 6 and a final one over frames 7..10
    assert max(open_frames) <= 4  # never more than one clip of logits per track
    assert pulled == list(range(11))
    assert preds and all(len(p["segmentations"]) == 11 for p in preds)
    assert all(r["size"] == [48, 64] for p in preds for r in p["segmentations"])
    assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)


def test_resizes_to_test_size_and_back(tiny, monkeypatch):
    model, post = tiny
    seen = []
    real = inference.prepare_frame

    def spy(frame, size, index):
        seen.append(size)
        return real(frame, size, index)

    monkeypatch.setattr(inference, "prepare_frame", spy)
    model.train()  # e.g. evaluation in the middle of training: the mode comes back afterwards
    try:
        preds = predict_video(model, post, video(T=3, H=60, W=100), test_size=48, max_size=160)
        assert model.training
    finally:
        model.eval()
    assert set(seen) == {(48, 80)}
    assert all(r["size"] == [60, 100] for p in preds for r in p["segmentations"])


def test_bad_input_is_reported(tiny):
    model, post = tiny
    frames = video(T=3)
    frames[2] = frames[2][:90]
    with pytest.raises(WsovvisError, match=r"frame 2: size \(90, 128\) differs"):
        predict_video(model, post, frames)
    with pytest.raises(WsovvisError, match="no frames"):
        predict_video(model, post, [])
    with pytest.raises(WsovvisError, match=r"clip_overlap 4 must be in 1..clip_length-1 \(3\)"):
        predict_video(model, post, video(T=2), clip_length=4, clip_overlap=4)
    with pytest.raises(WsovvisError, match=r"frame 0: expected an RGB array"):
        predict_video(model, post, [np.zeros((8, 8), np.uint8)])
