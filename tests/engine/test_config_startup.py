"""Start-up checks: model classes vs the val JSON's categories vs the eval mode; the eval header."""

from __future__ import annotations

import pytest

from wsovvis.data.dataset import YTVISVideoDataset
from wsovvis.engine.compose import compose_run
from wsovvis.engine.config import build_train_config
from wsovvis.engine.evaluation import check_eval_setup, eval_header
from wsovvis.errors import WsovvisError

from .helpers import box_mask, frames, write_video_set


@pytest.fixture()
def val(tmp_path):
    m = box_mask(32, 48, 4, 4, 20, 20)
    path = write_video_set(tmp_path, [{"name": "a", "frames": frames(2), "tracks": [(1, [m, m])]},
                                      {"name": "b", "frames": frames(2), "tracks": [(2, [m, None])]}], categories=2)
    return YTVISVideoDataset(path, tmp_path / "JPEGImages", max_videos=1)


def _cfg(*tokens):
    return build_train_config(compose_run(["model=seqformer_tiny"], list(tokens)).config)


def test_one_class_model_scored_per_class_fails_naming_eval_agnostic(val):
    with pytest.raises(WsovvisError, match=r"model.num_classes=1 \(a class-agnostic model\) scored per class against "
                                           r"the 2 categories of .*data.json would give AP 0.*eval=agnostic"):
        check_eval_setup(_cfg("model.num_classes=1"), val, None)
    with pytest.raises(WsovvisError, match=r"data.train_classes=agnostic trains one class.*eval=agnostic"):
        check_eval_setup(_cfg("model.num_classes=1", "data.train_classes=agnostic"), val, None)
    with pytest.raises(WsovvisError, match=r"model.num_classes=2 but the training JSON has 3 categories; set "
                                           r"model.num_classes=3 or evaluate class-agnostic with eval=agnostic"):
        check_eval_setup(_cfg("model.num_classes=2"), val, [{"id": i, "name": str(i)} for i in (1, 2, 3)])


def test_agreeing_setups_map_class_indices(val):
    assert check_eval_setup(_cfg("model.num_classes=1", "eval.class_agnostic=True"), val, None) == [1]
    assert check_eval_setup(_cfg("model.num_classes=5"), val, None) == [1, 2]
    with pytest.raises(WsovvisError, match=r"training category ids \[7\] are not categories of the val JSON"):
        check_eval_setup(_cfg("model.num_classes=5"), val, [{"id": 1, "name": "a"}, {"id": 7, "name": "x"}])


def test_eval_header_names_the_val_json_and_the_share_of_videos(val):
    cfg = _cfg("model.num_classes=5", "data.max_val_videos=1", "data.val_name=ytvis_2019_train")
    header = eval_header(cfg, val, 4)
    assert header == (f"evaluation at iteration 4 ({val.json_path}, ytvis per class, 1 of 2 videos: "
                      "data.max_val_videos=1)")
    assert "ytvis_2019_train" not in header
