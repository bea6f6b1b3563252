"""The Test tab with real transformers models: tiny random OWLv2 / SAM2 / SAM2-video folders written by
``save_pretrained`` (the autolabel tests' builders), loaded through the app's ``--detector`` / ``--segmenter``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.app.helpers import scene
from tests.autolabel.tiny_models import save_owlv2, save_sam2, save_sam2_video
from wsovvis.app import labeling
from wsovvis.errors import WsovvisError

pytestmark = pytest.mark.slow  # ~25 s on a loaded 2-core machine, most of it building the three models


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {"owlv2": save_owlv2(root / "owlv2"), "sam2": save_sam2(root / "sam2"),
            "sam2_video": save_sam2_video(root / "sam2_video")}


def test_image_and_video_tubes_with_tiny_random_models(folders, tmp_path):
    lab = labeling.build_labeler(str(folders["owlv2"]), str(folders["sam2_video"]), "cpu")
    assert lab.ready and "owlv2" in lab.describe()
    Image.fromarray(scene()).save(tmp_path / "a.png")
    # Random weights: what is found is arbitrary; threshold 0 keeps every query that survives NMS.
    res = labeling.run_test(lab, tmp_path / "a.png", "red, blue", None, 0.0, "segment", tmp_path / "s",
                            max_detections=3)
    assert 1 <= len(res.rows) <= 3
    assert res.rows and all(r[1] in ("red", "blue") and 0.0 <= r[2] <= 1.0 for r in res.rows)
    assert all(0 <= r[3] and r[3] + r[5] <= 80.5 and 0 <= r[4] and r[4] + r[6] <= 60.5 for r in res.rows)
    assert Image.open(res.images[0][0]).size == (80, 60)
    clip = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for t in range(3):
        vw.write(np.ascontiguousarray(scene(shift=t)[:, :, ::-1]))
    vw.release()
    tubes = labeling.run_test(lab, clip, "red", None, 0.0, "segment", tmp_path / "s", max_frames=3,
                              video_as="tubes", max_detections=2)
    assert tubes.headers[0] == "tube" and "owlv2_sam2 engine" in tubes.note
    assert all(r[1] == "red" and r[3].endswith("/3") for r in tubes.rows)


def test_an_image_sam2_cannot_make_tubes(folders, tmp_path):
    lab = labeling.build_labeler(str(folders["owlv2"]), str(folders["sam2"]), "cpu")
    with pytest.raises(WsovvisError, match=r"video tubes need a SAM2 \*video\* model as --segmenter"):
        lab.video_tracker()
    with pytest.raises(WsovvisError, match="--detector"):
        labeling.build_labeler(str(folders["sam2"]), None, "cpu")  # a SAM2 folder is no detector
