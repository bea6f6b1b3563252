"""Config composition and validation: routing, presets, schema errors, legacy d2 options."""

from __future__ import annotations

import pytest

from wsovvis.engine.compose import (
    apply_d2_opts,
    check_update_keys,
    compose,
    config_groups,
    map_d2_key,
    parse_updates,
    split_argv,
)
from wsovvis.engine.config import build_train_config, train_config_dict
from wsovvis.engine.launch import main
from wsovvis.errors import WsovvisError

from .helpers import frames, write_video_set


def test_argv_routing():
    groups = config_groups()
    assert {"model", "data", "solver", "input", "eval", "debug", "experiment"} <= set(groups)
    s = split_argv(["model=seqformer_tiny", "with", "a.yaml", "model.num_classes=3", "debug=cpu_smoke",
                    "+experiment=demo_synthetic", "-F", "runs/x", "resume=True"], groups)
    assert s.hydra_overrides == ["model=seqformer_tiny", "debug=cpu_smoke", "+experiment=demo_synthetic"]
    assert s.sacred_argv == ["with", "a.yaml", "model.num_classes=3", "-F", "runs/x", "resume=True"]


def test_defaults_compose_and_validate():
    cfg = build_train_config(compose([]))
    assert cfg.model.backbone.name == "resnet50" and cfg.model.num_classes == 40
    assert cfg.solver.base_lr == 2e-4 and cfg.solver.max_iter == 12000 and cfg.solver.steps == [8000]
    assert cfg.solver.clip_max_norm == 0.01 and cfg.solver.backbone_multiplier == 0.1
    assert cfg.input.sampling_frame_num == 5 and cfg.input.sampling_frame_range == 10
    assert cfg.eval.mode == "local" and cfg.resume is False


@pytest.mark.parametrize("model", ["seqformer_r50", "seqformer_tiny", "seqformer_dinov2_vits14",
                                   "seqformer_dinov2_vitb14", "seqformer_dinov2_vitl14", "seqformer_dinov2_vitg14"])
def test_every_model_option_composes(model):
    cfg = build_train_config(compose([f"model={model}"]))
    assert cfg.model.name == "seqformer"


def test_every_group_option_composes():
    from wsovvis.engine.compose import config_dir

    for group in ("data", "input", "solver", "eval", "debug", "experiment"):
        for f in sorted((config_dir() / group).glob("*.yaml")):
            build_train_config(compose([f"{group}={f.stem}"]), where=f"{group}={f.stem}")


@pytest.mark.parametrize("name", ["seqformer_pseudo_sacred.yaml", "seqformer_dinov2_pseudo_sacred.yaml"])
def test_sacred_experiment_files_compose(name):
    from wsovvis.engine.compose import config_dir, deep_merge

    updates, overrides = parse_updates([str(config_dir() / name)])
    full = train_config_dict(build_train_config(compose(overrides)))
    check_update_keys(full, updates)
    cfg = build_train_config(deep_merge(full, updates))
    assert cfg.model.num_classes == 1 and cfg.eval.class_agnostic and cfg.data.train_classes == "agnostic"
    assert cfg.data.train_json.endswith("_pseudo.json")


def test_debug_preset_and_command_line_precedence():
    smoke = build_train_config(compose(["debug=cpu_smoke"]))
    assert smoke.model.backbone.name == "tiny_cnn" and smoke.solver.max_iter == 4 and smoke.device == "cpu"
    both = build_train_config(compose(["debug=cpu_smoke", "model=seqformer_r50"]))
    assert both.model.backbone.name == "resnet50" and both.solver.max_iter == 4  # the command line wins
    demo = build_train_config(compose(["experiment=demo_synthetic"]))
    assert demo.model.num_classes == 1 and demo.eval.class_agnostic and demo.data.train_classes == "agnostic"


def test_unknown_key_names_the_closest():
    full = train_config_dict(build_train_config(compose([])))
    with pytest.raises(WsovvisError, match=r"unknown key 'solver\.base_rl'; did you mean 'solver\.base_lr'"):
        check_update_keys(full, {"solver": {"base_rl": 1.0}})
    with pytest.raises(WsovvisError, match=r"'model\.backbone\.nmae'; did you mean 'model\.backbone\.name'"):
        check_update_keys(full, {"model": {"backbone": {"nmae": "x"}}})
    with pytest.raises(WsovvisError, match=r"unknown key 'eval_onyl'; did you mean 'eval_only'"):
        build_train_config({**full, "eval_onyl": True})


def test_wrong_type_names_the_expected_type():
    full = train_config_dict(build_train_config(compose([])))
    bad = {**full, "solver": {**full["solver"], "max_iter": "many"}}
    with pytest.raises(WsovvisError, match=r"'solver\.max_iter' expects int, got str 'many'"):
        build_train_config(bad)
    bad = {**full, "eval": {**full["eval"], "mode": "online"}}
    with pytest.raises(WsovvisError, match=r"'eval\.mode' expects one of 'local', 'submission'"):
        build_train_config(bad)
    bad = {**full, "input": {**full["input"], "min_size_train": [320, "x"]}}
    with pytest.raises(WsovvisError, match=r"'input\.min_size_train\[1\]' expects int"):
        build_train_config(bad)
    bad = {**full, "model": {**full["model"], "num_classes": 2.5}}
    with pytest.raises(WsovvisError, match=r"'model\.num_classes' expects int"):
        build_train_config(bad)
    ok = build_train_config({**full, "resume": "runs/x/3"})
    assert ok.resume == "runs/x/3"


def test_d2_opts_mapping():
    full = train_config_dict(build_train_config(compose([])))
    full["d2_opts"] = ["MODEL.WEIGHTS", "w.pth", "MODEL.SeqFormer.NUM_CLASSES", "25", "TEST.EVAL_PERIOD", "500",
                       "SOLVER.CHECKPOINT_PERIOD", "250", "SOLVER.MAX_ITER", "1000", "SOLVER.BASE_LR", "0.0001",
                       "SOLVER.IMS_PER_BATCH", "8", "INPUT.SAMPLING_FRAME_NUM", "3", "MODEL.DINOV2.FREEZE", "false"]
    cfg = build_train_config(apply_d2_opts(full))
    assert cfg.model.weights == "w.pth" and cfg.model.num_classes == 25 and cfg.eval.period == 500
    assert cfg.solver.checkpoint_period == 250 and cfg.solver.max_iter == 1000 and cfg.solver.base_lr == 1e-4
    assert cfg.solver.ims_per_batch == 8 and cfg.input.sampling_frame_num == 3 and cfg.model.backbone.freeze is False
    pairs = build_train_config(apply_d2_opts({**full, "d2_opts": [["SOLVER.MAX_ITER", 7]]}))
    assert pairs.solver.max_iter == 7
    assert map_d2_key("solver.max_iter") == "solver.max_iter"
    with pytest.raises(WsovvisError, match=r"d2_opts key 'SOLVER.LR_SCHEDULER' is not supported; supported keys: .*"
                                           r"INPUT\.SAMPLING_FRAME_NUM.*MODEL\.DINOV2\.\*"):
        apply_d2_opts({**full, "d2_opts": ["SOLVER.LR_SCHEDULER", "x"]})
    with pytest.raises(WsovvisError, match="odd number"):
        apply_d2_opts({**full, "d2_opts": ["SOLVER.MAX_ITER"]})
    with pytest.raises(WsovvisError, match=r"'model\.backbone\.nope'"):
        apply_d2_opts({**full, "d2_opts": ["MODEL.DINOV2.NOPE", "1"]})


def test_update_file_with_defaults(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("defaults:\n  - model: seqformer_tiny\nsolver:\n  max_iter: 9\n")
    updates, overrides = parse_updates([str(f), "solver.base_lr=0.5", "data.train_json=/x/y.json"])
    assert overrides == ["model=seqformer_tiny"]
    assert updates == {"solver": {"max_iter": 9, "base_lr": 0.5}, "data": {"train_json": "/x/y.json"}}
    with pytest.raises(WsovvisError, match="config file does not exist"):
        parse_updates([str(tmp_path / "nope.yaml")])
    with pytest.raises(WsovvisError, match="neither key=value"):
        parse_updates(["cpu_smoke"])


@pytest.mark.parametrize("argv, message", [
    (["with", "solver.base_rl=0.1"], "did you mean 'solver.base_lr'"),
    (["with", "solver.max_iter=lots"], "'solver.max_iter' expects int, got str 'lots'"),
    (["model=seqformer_nope"], "model/seqformer_nope"),
    (["with", "d2_opts=['SOLVER.FOO', 1]"], "supported keys"),
    (["with", "resume=True"], "no run directory under it has a checkpoint"),
    (["with", "eval_only=True"], "eval_only=True needs resume=True"),
    (["with", "data.train_json=/nonexistent/train.json"], "/nonexistent/train.json: data.train_json names no file"),
])
def test_command_line_errors_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_video_set(tmp_path / "d", [{"name": "a", "frames": frames(1), "tracks": []}])
    paths = [f"data.train_json={data}", f"data.train_img_root={tmp_path / 'd' / 'JPEGImages'}"]
    if "with" not in argv:
        argv = [*argv, "with"]
    code = main(["eval=off", *argv[:argv.index("with") + 1], *paths, *argv[argv.index("with") + 1:],
                 "-F", str(tmp_path / "runs"), "-c", "no"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert any(line.startswith("error: ") and message in line for line in err.splitlines()), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run directory


def test_help_needs_no_data(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "train_seqformer_pseudo.py [(with UPDATE...)] [options]" in out and "-F VALUE --file_storage=VALUE" in out
