"""VideoCutLER adapter with a fake clip predictor: windows, stitching, threshold, overlap, 0 instances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsovvis.data.masks import read_ids
from wsovvis.errors import WsovvisError
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.runner import run_shard
from wsovvis.pseudo.videocutler import CutLERPredictor, VideoCutLEREngine, windows

H, W, T = 20, 30, 12


def test_windows_by_hand():
    assert windows(5, 8, 2) == [(0, 5)]
    assert windows(12, 5, 2) == [(0, 5), (3, 8), (6, 11), (7, 12)]
    assert windows(10, 4, 0) == [(0, 4), (4, 8), (6, 10)]
    with pytest.raises(ValueError):
        windows(10, 4, 4)


def _object_masks() -> dict[str, np.ndarray]:
    """Ground truth of the fake model: A moves right over all frames, B sits still in frames 0..8."""
    a = np.zeros((T, H, W), bool)
    b = np.zeros((T, H, W), bool)
    for t in range(T):
        a[t, 2:8, t:t + 6] = True
        if t <= 8:
            b[t, 10:18, 20:28] = True
    return {"A": a, "B": b}


class FakePredictor:
    """Sees which frames it gets (their pixel value encodes the index) and returns the true masks of
    those frames in a clip-dependent order, plus a low-confidence junk tube; records every clip."""

    def __init__(self, objects: dict[str, np.ndarray], scores: dict[str, float]):
        self.objects, self.scores = objects, scores
        self.clips: list[list[int]] = []

    def __call__(self, frames: np.ndarray):
        idx = [int(f[0, 0, 0]) for f in frames]
        self.clips.append(idx)
        names = sorted(self.objects, reverse=len(self.clips) % 2 == 0)  # order changes per clip
        scores = [self.scores[n] for n in names] + [0.3]
        masks = [self.objects[n][idx] for n in names] + [np.ones((len(idx), H, W), bool)]
        return np.array(scores), np.stack(masks)


def _video(n: int = T) -> Video:
    frames = np.zeros((n, H, W, 3), np.uint8)
    for t in range(n):
        frames[t] = t  # the fake predictor reads the frame index back
    return Video(name="v", frame_names=[f"{t:05d}.jpg" for t in range(n)], frames=frames, size=(H, W))


def test_stitching_keeps_ids_across_windows_and_drops_low_scores():
    objs = _object_masks()
    pred = FakePredictor(objs, {"A": 0.95, "B": 0.85})
    eng = VideoCutLEREngine(pred, threshold=0.5, clip_len=5, overlap=2)
    res = eng(_video())
    assert pred.clips == [list(range(s, e)) for s, e in windows(T, 5, 2)]  # every window, in order
    assert len(res.tubes) == 2  # the 0.3 junk tube never passes the threshold
    a = next(tb for tb in res.tubes if tb.score == pytest.approx(0.95))
    b = next(tb for tb in res.tubes if tb.score == pytest.approx(0.85))
    assert a.frames == list(range(T)) and b.frames == list(range(9))
    for t in range(T):
        np.testing.assert_array_equal(a.masks[t], objs["A"][t])
    # B passes the threshold in every window, as an empty tube in the last one (dropped, no new id).
    assert res.stats["kept_clip_instances"] == 2 * 4


def test_highest_score_wins_on_overlap(tmp_path):
    a = np.zeros((T, H, W), bool)
    b = np.zeros((T, H, W), bool)
    a[:, 0:10, 0:10] = True
    b[:, 5:15, 5:15] = True  # overlaps A on [5:10, 5:10]
    eng = VideoCutLEREngine(FakePredictor({"A": a, "B": b}, {"A": 0.7, "B": 0.9}), threshold=0.5, clip_len=T)
    res = eng(_video())
    from wsovvis.pseudo.cleanup import paint_ids

    ids = paint_ids(res.tubes, 0, (H, W))
    b_id = next(tb.tube_id for tb in res.tubes if tb.score == pytest.approx(0.9))
    assert (ids[5:10, 5:10] == b_id).all()


class _EmptyPredictor:
    def __call__(self, frames):
        return np.zeros(0), np.zeros((0, len(frames), H, W), bool)


def _write_video(root, name, n=4):
    from PIL import Image

    d = root / name
    d.mkdir(parents=True)
    for t in range(n):
        Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(d / f"{t:05d}.jpg")


def test_zero_instances_give_all_zero_pngs_and_a_manifest_entry(tmp_path):
    img_root = tmp_path / "JPEGImages"
    _write_video(img_root, "empty_video")
    eng = VideoCutLEREngine(_EmptyPredictor(), threshold=0.6)
    s = run_shard(eng, img_root, tmp_path / "out", progress=False)
    assert s.done == ["empty_video"] and s.tubes == {"empty_video": 0}
    for t in range(4):
        ids = read_ids(tmp_path / "out/masks/empty_video" / f"mask_{t:05d}.png")
        assert ids.shape == (H, W) and not ids.any()
    entry = json.loads((tmp_path / "out/manifest/shard_000_of_001.jsonl").read_text())
    assert entry["status"] == "done" and entry["tubes"] == [] and "threshold 0.6" in entry["notes"][0]


def test_predictor_shape_mismatch_is_an_error_naming_the_video():
    class Bad:
        def __call__(self, frames):
            return np.array([0.9]), np.zeros((1, len(frames) + 1, H, W), bool)

    with pytest.raises(WsovvisError, match="v: predictor returned masks"):
        VideoCutLEREngine(Bad(), threshold=0.5)(_video(3))


def test_missing_pieces_are_listed_in_one_message(tmp_path):
    with pytest.raises(WsovvisError) as e:
        CutLERPredictor(tmp_path / "no_cutler", weights=None)
    msg = str(e.value)
    assert "git clone --recursive https://github.com/facebookresearch/CutLER" in msg
    assert "--weights videocutler_m2f_rn50.pth" in msg
    assert "detectron2" in msg  # not installed in this environment
    (tmp_path / "CutLER/videocutler").mkdir(parents=True)
    with pytest.raises(WsovvisError, match="config: .*video_mask2former_R50_cls_agnostic.yaml not found"):
        CutLERPredictor(tmp_path / "CutLER", weights=str(tmp_path / "missing.pth"))
