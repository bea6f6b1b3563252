"""The one-pass composition: every config round-trips through its saved form, sources, the preset rule,
eval-only/resume rebasing on a run's saved config."""

from __future__ import annotations

import pytest
import yaml

from wsovvis.engine.compose import compose_run, config_dir, config_groups
from wsovvis.engine.config import TrainConfig, build_train_config, train_config_dict
from wsovvis.engine.resume_config import rebase_on_saved
from wsovvis.engine.run_dir import config_yaml_text
from wsovvis.errors import WsovvisError


def _every_config() -> list[tuple[list[str], list[str]]]:
    """(group overrides, with tokens) of every group option, every preset and every experiment file."""
    out: list[tuple[list[str], list[str]]] = [([], [])]
    for group in config_groups():
        for f in sorted((config_dir() / group).glob("*.yaml")):
            out.append(([f"{group}={f.stem}"], []))
    for f in sorted(config_dir().glob("*.yaml")):
        if f.name != "config.yaml":
            out.append(([], [str(f)]))
    return out


def test_every_config_reloads_from_its_saved_form_into_an_identical_run_config():
    configs = _every_config()
    assert len(configs) >= 20  # every group option, preset and experiment file is here
    for overrides, tokens in configs:
        what = " ".join(overrides + tokens) or "defaults"
        composed = compose_run(overrides, tokens)
        cfg = build_train_config(composed.config, where=what)
        resolved = train_config_dict(cfg)
        assert set(composed.sources) >= set(_leaves(resolved)), what  # every key has a source
        text = config_yaml_text(resolved, composed.sources)
        again = build_train_config(yaml.safe_load(text), where=f"saved {what}")
        assert again == cfg, what
        assert train_config_dict(again) == resolved, what


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out += _leaves(v, key) if isinstance(v, dict) and v else [key]
    return out


def test_each_default_lives_in_the_schema_only():
    root = yaml.safe_load((config_dir() / "config.yaml").read_text())
    assert set(root) == {"defaults"}  # the root selects groups; TrainConfig holds the top-level defaults
    composed = compose_run([], [])
    assert composed.sources["log_period"] == "default" and composed.config["log_period"] == TrainConfig().log_period
    assert composed.sources["model.backbone.name"] == "model=seqformer_r50"
    assert composed.sources["solver.max_iter"] == "solver=seqformer_r50"


def test_sources_name_group_file_and_command_line(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("defaults:\n  - model: seqformer_tiny\nsolver:\n  base_lr: 0.5\n  max_iter: 9\n")
    c = compose_run(["eval=agnostic"], [str(f), "solver.max_iter=11"])
    assert c.sources["solver.base_lr"] == f"file {f}"
    assert c.sources["solver.max_iter"] == "command line" and c.config["solver"]["max_iter"] == 11
    assert c.sources["model.transformer.d_model"] == "model=seqformer_tiny"
    assert c.sources["eval.class_agnostic"] == "eval=agnostic"
    assert "solver.max_iter" in c.given and "eval.class_agnostic" in c.given
    assert "solver.base_lr" not in c.given and "model.transformer.d_model" not in c.given
    text = config_yaml_text(train_config_dict(build_train_config(c.config)), c.sources)
    assert "  max_iter: 11  # command line\n" in text and f"  base_lr: 0.5  # file {f}\n" in text


def test_preset_caps_scale_with_a_larger_max_iter_and_are_reported():
    smoke = compose_run(["debug=cpu_smoke"], [])
    assert smoke.config["eval"]["period"] == 2 and smoke.config["solver"]["max_iter"] == 4
    assert any(n.startswith("preset debug=cpu_smoke: 4 iterations") for n in smoke.notices)  # states its caps
    longer = compose_run(["debug=cpu_smoke"], ["solver.max_iter=40"])
    cfg = build_train_config(longer.config)
    # 40 iterations keep the preset's shape (2 evaluations, 2 checkpoints, the step at 3/4), not 20 evaluations
    assert cfg.eval.period == 20 and cfg.solver.checkpoint_period == 20 and cfg.solver.steps == [30]
    assert longer.sources["eval.period"] == "debug=cpu_smoke (scaled to max_iter 40)"
    assert any("eval.period=2 was meant for max_iter 4; scaled to 20" in n for n in longer.notices)
    # a key given explicitly is never scaled
    explicit = build_train_config(compose_run(["debug=cpu_smoke"], ["solver.max_iter=40", "eval.period=5"]).config)
    assert explicit.eval.period == 5 and explicit.solver.checkpoint_period == 20


def test_a_file_overriding_a_preset_is_reported_not_silent(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("eval:\n  period: 2000\n")
    c = compose_run(["debug=cpu_smoke"], [str(f)])
    assert c.config["eval"]["period"] == 2000  # later layers win ...
    assert any(n == f"preset debug=cpu_smoke sets eval.period=2; file {f} overrides it: 2000" for n in c.notices)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("solver:\n  base_rl: 1\n")
    with pytest.raises(WsovvisError, match=rf"config update \(file {f}\): unknown key 'solver.base_rl'; "
                                           r"did you mean 'solver.base_lr'"):
        compose_run([], [str(f)])


def _saved(tmp_path, overrides, tokens):
    c = compose_run(overrides, tokens)
    resolved = train_config_dict(build_train_config(c.config))
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml_text(resolved, c.sources))
    return path, resolved


def test_resume_rebases_on_the_saved_config_and_only_command_line_keys_override(tmp_path):
    saved, resolved = _saved(tmp_path, ["debug=cpu_smoke"], ["model.num_classes=1", "data.train_json=/d/t.json"])
    other = tmp_path / "yaml_of_another_model.yaml"
    other.write_text("defaults:\n  - model: seqformer_r50\nmodel:\n  num_classes: 1\neval:\n  period: 2000\n")
    new = compose_run([], [str(other), "eval_only=True", "resume=True", "data.max_val_videos=1"])
    out, applied, ignored = rebase_on_saved(saved, new)
    cfg = build_train_config(out.config)
    assert cfg.model.backbone.name == "tiny_cnn" and cfg.eval.period == 2  # the saved run's, not the yaml's
    assert cfg.eval_only is True and cfg.resume is True and cfg.data.max_val_videos == 1
    assert cfg.data.train_json == "/d/t.json"
    assert applied == ["data.max_val_videos: 2 -> 1 (command line)"]
    assert any(line.startswith("model.backbone.name: kept 'tiny_cnn'") for line in ignored)
    assert any(line.startswith(f"eval.period: kept 2 (file {other} would give 2000)") for line in ignored)
    # nothing given: the saved config comes back exactly (plus resume / eval_only)
    same, applied, _ = rebase_on_saved(saved, compose_run([], ["eval_only=True", "resume=True"]))
    again = train_config_dict(build_train_config(same.config))
    assert applied == [] and {**again, "resume": False, "eval_only": False} == resolved


def test_saved_config_with_a_key_the_schema_lacks_fails_naming_it(tmp_path):
    saved = tmp_path / "config.yaml"
    saved.write_text("solver:\n  base_rl: 1.0\n")
    with pytest.raises(WsovvisError, match=rf"{saved} \(saved config\): unknown key 'solver.base_rl'"):
        rebase_on_saved(saved, compose_run([], ["resume=True"]))
