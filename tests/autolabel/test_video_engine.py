"""The owlv2_sam2 video engine with the deterministic colour stand-ins: ids, categories, entries, occlusion."""

from __future__ import annotations

import numpy as np

from tests.autolabel.scenes import video_frames
from wsovvis.autolabel.images import AutolabelParams
from wsovvis.autolabel.prompts import PromptSet
from wsovvis.autolabel.standins import ColourDetector, ColourVideoTracker
from wsovvis.pseudo.cleanup import paint_ids
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.owlv2_sam2 import Owlv2Sam2Engine


def _engine(key_every=4, prompt_map=None):
    names = ["box", "car", "tree", "cloud"]
    pm = prompt_map or {"red box": "box", "blue car": "car", "green tree": "tree", "yellow cloud": "cloud"}
    return Owlv2Sam2Engine(ColourDetector(), ColourVideoTracker(), PromptSet.from_names(names, pm),
                           AutolabelParams(), key_every=key_every)


def _run(engine, frames):
    video = Video("v", [f"{t:05d}.png" for t in range(len(frames))], frames, frames.shape[1:3])
    res = engine(video)
    ids = np.stack([paint_ids(res.tubes, t, video.size) for t in range(len(frames))])
    return res, ids


def _gt_to_pred(gt, pred):
    """GT id -> the predicted id covering most of it, per frame (None where GT is absent)."""
    out = {}
    for g in np.unique(gt[gt > 0]):
        out[int(g)] = [None if not (gt[t] == g).any() else int(np.bincount(pred[t][gt[t] == g]).argmax())
                       for t in range(len(gt))]
    return out


def test_ids_categories_entry_and_occlusion():
    frames, gt = video_frames()
    res, ids = _run(_engine(key_every=4), frames)
    tubes = {tb.tube_id: tb for tb in res.tubes}
    m = _gt_to_pred(gt, ids)
    # every GT object maps to exactly one predicted id over all of its frames
    for g, seq in m.items():
        present = [p for p in seq if p is not None]
        assert len(set(present)) == 1 and present[0] != 0, (g, seq)
    red, blue, green = m[1][0], m[2][0], m[3][7]
    assert len({red, blue, green}) == 3 and len(tubes) == 3
    assert (tubes[red].category_name, tubes[blue].category_name, tubes[green].category_name) == ("box", "car", "tree")
    assert tubes[red].category_id == 1 and tubes[green].category_id == 3
    # the red square kept its id through the occlusion (frames 6..8 hidden), and is absent there
    assert all(red not in np.unique(ids[t]) for t in (6, 7, 8))
    assert red in np.unique(ids[9]) and red in np.unique(ids[15])
    assert res.stats["revived"] >= 1
    # the green square entered on frame 7 between key frames 4 and 8: tracked backwards to its first frame
    assert min(tubes[green].masks) == 7
    # masks agree with GT where present
    for g, pid in ((1, red), (2, blue), (3, green)):
        inter = np.logical_and(gt == g, ids == pid).sum()
        union = np.logical_or(gt == g, ids == pid).sum()
        assert inter / union > 0.95


def test_duplicate_prompts_across_classes_give_one_track():
    frames, _ = video_frames(num_frames=6)
    # two prompts from two classes find the same blue square: per-class NMS keeps both, the tracker
    # sees the second as a duplicate of the first on the key frame only after one is tracked
    eng = _engine(prompt_map={"red box": "box", "blue car": "car", "blue cloud": "cloud"})
    eng.params = AutolabelParams(agnostic_nms_iou=0.5)
    res, ids = _run(eng, frames)
    assert sorted(tb.category_name for tb in res.tubes) == ["box", "car"]


def test_nothing_found_gives_no_tubes():
    frames, _ = video_frames(num_frames=5)
    res, ids = _run(_engine(prompt_map={"purple thing": "box"}), frames)
    assert res.tubes == [] and not ids.any()


def test_tube_masks_are_held_as_rle():
    from wsovvis.pseudo.owlv2_sam2 import RleMasks

    m = RleMasks({3: np.eye(5, dtype=bool)})
    m[7] = np.zeros((5, 5), bool)
    assert sorted(m) == [3, 7] and m.get(4) is None and len(m) == 2
    np.testing.assert_array_equal(m[3], np.eye(5, dtype=bool))
    assert m[3].dtype == bool
    del m[7]
    assert list(m) == [3]
    frames, _ = video_frames(num_frames=6)
    res, _ = _run(_engine(), frames)
    assert res.tubes and all(isinstance(tb.masks, RleMasks) for tb in res.tubes)


def test_each_object_tracked_once_per_segment():
    calls = []

    class Counting(ColourVideoTracker):
        def propagate(self, frames, prompts):
            calls.append((len(frames), len(prompts)))
            return super().propagate(frames, prompts)

    frames, _ = video_frames()
    eng = _engine(key_every=4)
    eng.tracker = Counting()
    _run(eng, frames)
    # one-frame calls segment the key frame's detections; longer ones track: never more objects than
    # are in the scene (red, blue, and green from frame 7), though each key frame re-detects them all
    assert max(n for t, n in calls if t > 1) <= 3
    assert sum(1 for t, _ in calls if t == 1) == 4  # key frames 0, 4, 8, 12
