"""Migration from detectron2/VNext configs: ``d2_cfg_path`` (with its ``_BASE_`` chain) and ``d2_opts``."""

from __future__ import annotations

import pytest

from wsovvis.engine.compose import compose_run
from wsovvis.engine.config import build_train_config
from wsovvis.engine.launch import main
from wsovvis.errors import WsovvisError

# Written like VNext's projects/SeqFormer/configs/base_ytvis.yaml (seqformer.md §5.1).
BASE_YTVIS = """\
MODEL:
  META_ARCHITECTURE: "SeqFormer"
  WEIGHTS: "weights/d2_seqformer_pretrain_r50.pth"
  PIXEL_MEAN: [123.675, 116.280, 103.530]
  PIXEL_STD: [58.395, 57.120, 57.375]
  MASK_ON: True
  RESNETS:
    DEPTH: 50
    STRIDE_IN_1X1: False
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  SeqFormer:
    NUM_OBJECT_QUERIES: 300
    NUM_CLASSES: 40
    MULTI_CLS_ON: True
DATASETS:
  TRAIN: ("ytvis_2019_train",)
  TEST: ("ytvis_2019_val",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.0002
  STEPS: (8000,)
  MAX_ITER: 12000
  WARMUP_FACTOR: 1.0
  WARMUP_ITERS: 10
  WEIGHT_DECAY: 0.0001
  OPTIMIZER: "ADAMW"
  BACKBONE_MULTIPLIER: 0.1
  CLIP_GRADIENTS:
    ENABLED: True
    CLIP_TYPE: "full_model"
    CLIP_VALUE: 0.01
    NORM_TYPE: 2.0
  CHECKPOINT_PERIOD: 1000
INPUT:
  SAMPLING_FRAME_NUM: 5
  SAMPLING_FRAME_RANGE: 10
  MIN_SIZE_TRAIN_SAMPLING: "choice_by_clip"
  RANDOM_FLIP: "flip_by_clip"
  MIN_SIZE_TRAIN: (320, 352, 392, 416, 448, 480, 512, 544, 576, 608, 640)
  MAX_SIZE_TRAIN: 768
  MIN_SIZE_TEST: 360
  CROP:
    ENABLED: False
    TYPE: "absolute_range"
    SIZE: (384, 600)
  FORMAT: "RGB"
TEST:
  EVAL_PERIOD: 0
DATALOADER:
  FILTER_EMPTY_ANNOTATIONS: False
VERSION: 2
"""

# The seed workflow's DINOv2 overlay.
DINOV2_OVERLAY = """\
_BASE_: base_ytvis.yaml
MODEL:
  WEIGHTS: ""
  BACKBONE:
    NAME: "DINOv2PseudoFPN"
  DINOV2:
    MODEL_NAME: "dinov2_vitb14"
    WEIGHTS: "weights/dinov2_vitb14_pretrain.pth"
    FREEZE: True
    OUT_CHANNELS: 256
  SeqFormer:
    NUM_CLASSES: 1
SOLVER:
  BACKBONE_MULTIPLIER: 0.0
  MAX_ITER: 6000
  STEPS: (4000,)
  AMP:
    ENABLED: True
"""


@pytest.fixture()
def vnext_configs(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    (d / "base_ytvis.yaml").write_text(BASE_YTVIS)
    (d / "dinov2_overlay.yaml").write_text(DINOV2_OVERLAY)
    return d


def test_base_ytvis_maps_onto_the_defaults(vnext_configs):
    c = compose_run([], [f"d2_cfg_path={vnext_configs / 'base_ytvis.yaml'}"])
    cfg = build_train_config(c.config)
    assert cfg.model.backbone.name == "resnet50" and cfg.model.num_classes == 40
    assert cfg.model.weights == "weights/d2_seqformer_pretrain_r50.pth"
    assert cfg.input.max_size_train == 768 and cfg.input.min_size_train[0] == 320  # tuple -> list
    assert cfg.solver.steps == [8000] and cfg.solver.clip_max_norm == 0.01 and cfg.data.train_name == "ytvis_2019_train"
    base = vnext_configs / "base_ytvis.yaml"
    assert c.sources["input.max_size_train"] == f"d2_cfg_path {base} (INPUT.MAX_SIZE_TRAIN)"


def test_dinov2_overlay_reads_its_base_chain(vnext_configs, tmp_path):
    overlay = vnext_configs / "dinov2_overlay.yaml"
    job = tmp_path / "job.yaml"  # a Sacred yaml of the seed workflow; its own keys still win over the d2 file
    job.write_text(f"d2_cfg_path: {overlay}\nsolver:\n  max_iter: 100\n")
    c = compose_run([], [str(job)])
    cfg = build_train_config(c.config)
    assert cfg.model.backbone.name == "dinov2_vitb14" and cfg.model.backbone.freeze is True
    assert cfg.model.backbone.weights == "weights/dinov2_vitb14_pretrain.pth" and cfg.model.backbone.out_channels == 256
    assert cfg.model.num_classes == 1 and cfg.solver.backbone_multiplier == 0.0 and cfg.solver.amp == "fp16"
    assert cfg.solver.steps == [4000] and cfg.solver.max_iter == 100  # the with-file wins over d2_cfg_path
    assert cfg.model.weights is None or cfg.model.weights == ""
    assert cfg.input.sampling_frame_num == 5  # from the base
    # d2_opts win over everything
    c = compose_run([], [str(job), "d2_opts=['SOLVER.MAX_ITER', 7]"])
    assert build_train_config(c.config).solver.max_iter == 7


def test_unsupported_keys_set_away_from_vnext_defaults_fail_with_the_list(vnext_configs):
    bad = vnext_configs / "bad.yaml"
    bad.write_text("_BASE_: base_ytvis.yaml\nMODEL:\n  SeqFormer:\n    CLIP_MATCHING: True\n"
                   "  RESNETS:\n    DEPTH: 101\n  MASK_ON: True\nSOLVER:\n  OPTIMIZER: SGD\n  SOMETHING_NEW: 3\n")
    with pytest.raises(WsovvisError) as e:
        compose_run([], [f"d2_cfg_path={bad}"])
    msg = str(e.value)
    assert msg.startswith(f"{bad}: 4 detectron2 keys are set away from VNext's defaults")
    for part in ("MODEL.SeqFormer.CLIP_MATCHING: True (VNext default False", "MODEL.RESNETS.DEPTH: 101",
                 "SOLVER.OPTIMIZER: 'SGD'", "SOLVER.SOMETHING_NEW: 3 (not a key wsovvis knows)"):
        assert part in msg, msg
    assert "MASK_ON" not in msg  # at VNext's default: accepted


def test_missing_vnext_checkout_says_it_is_not_needed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = "third_party/VNext/projects/SeqFormer/configs/base_ytvis.yaml"
    with pytest.raises(WsovvisError, match="d2_cfg_path names no file; the VNext checkout is no longer needed.*"
                                           "base_ytvis.yaml.*model=seqformer_r50"):
        compose_run([], [f"d2_cfg_path={missing}"])
    assert main(["with", f"d2_cfg_path={missing}", "-F", str(tmp_path / "runs")]) == 2
    assert f"error: {missing}: d2_cfg_path names no file" in capsys.readouterr().err
    overlay = tmp_path / "o.yaml"
    overlay.write_text("_BASE_: base_ytvis.yaml\n")
    with pytest.raises(WsovvisError, match=r"base_ytvis.yaml: _BASE_ of .*o.yaml names no file; the VNext checkout"):
        compose_run([], [f"d2_cfg_path={overlay}"])


def test_dinov2_sizes(vnext_configs):
    for name, want in [("vit_small", "dinov2_vits14"), ("dinov2_vitl14_reg", "dinov2_vitl14_reg"),
                       ("vitg14", "dinov2_vitg14")]:
        f = vnext_configs / f"{name}.yaml"
        f.write_text(f"MODEL:\n  BACKBONE:\n    NAME: DINOv2PseudoFPN\n  DINOV2:\n    MODEL_NAME: {name}\n")
        assert build_train_config(compose_run([], [f"d2_cfg_path={f}"]).config).model.backbone.name == want
