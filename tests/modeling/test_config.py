"""``ModelConfig`` as the schema of the ``model`` node: YAMLs, Hydra composition, errors."""

from __future__ import annotations

import logging
from dataclasses import asdict
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from tests.modeling.helpers import CONFIG_DIR, model_cfg
from wsovvis.errors import WsovvisError
from wsovvis.modeling import ModelConfig, build_model
from wsovvis.modeling.build import build_backbone_from_config
from wsovvis.modeling.config import BackboneConfig, to_model_config


def test_r50_yaml_is_the_schema_default():
    assert asdict(to_model_config(model_cfg("seqformer_r50"))) == asdict(ModelConfig())
    d = ModelConfig()
    assert (d.transformer.num_queries, d.transformer.enc_layers, d.transformer.dec_layers, d.transformer.d_model) == (
        300, 6, 6, 256,
    )


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_yaml_validates(name):
    cfg = to_model_config(model_cfg(name))
    assert cfg.backbone.name in ("resnet50", "tiny_cnn") or cfg.backbone.name.startswith("dinov2_")


def test_accepts_full_config_objects_and_dictconfig():
    node = model_cfg("seqformer_tiny")
    for cfg in (SimpleNamespace(model=node), {"model": node}, OmegaConf.create({"model": node}), node):
        assert to_model_config(cfg).transformer.d_model == 64
    model, criterion, post = build_model(OmegaConf.create({"model": node, "seed": 1}))
    assert model.num_queries == 10 and post.clip_length == 4 and criterion.num_classes == 5


def test_hydra_composes_the_model_group():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR.parent), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=seqformer_tiny", "model.num_classes=3"])
    mc = to_model_config(cfg)
    assert mc.num_classes == 3 and mc.backbone.name == "tiny_cnn"


def test_errors_name_the_key():
    with pytest.raises(WsovvisError, match=r"model config: unknown key 'model.backbone.foo'"):
        to_model_config({"backbone": {"foo": 1}})
    with pytest.raises(WsovvisError, match=r"key 'model.num_classes' expects int, got str 'many'"):
        to_model_config({"num_classes": "many"})
    with pytest.raises(WsovvisError, match="model.msda_impl"):
        build_model({"model": model_cfg("seqformer_tiny", msda_impl="cuda")})
    with pytest.raises(WsovvisError, match="model.backbone.name: unknown backbone 'vgg16'"):
        build_model({"model": model_cfg("seqformer_tiny", **{"backbone.name": "vgg16"})})
    with pytest.raises(WsovvisError, match="model.transformer.d_model"):
        build_model({"model": model_cfg("seqformer_tiny", **{"transformer.d_model": 48})})


def test_unused_backbone_options_are_logged(monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("wsovvis"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        bb = build_backbone_from_config(BackboneConfig(name="tiny_cnn", width=8, freeze_at=0, out_channels=128))
    assert bb.out_channels["res5"] == 64
    assert "tiny_cnn does not use freeze_at, out_channels" in caplog.text
