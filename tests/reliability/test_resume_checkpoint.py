"""Training checkpoints: resume reads them without running code and refuses a changed model config."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.helpers import build, model_cfg
from tests.reliability.helpers import MarkerPayload
from wsovvis.engine.checkpoint import Checkpointer, load_file, model_config_differences, restore_model, rng_state
from wsovvis.engine.optim import WarmupMultiStepLR
from wsovvis.errors import WsovvisError


def _trained_state(model, config):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = WarmupMultiStepLR(opt, steps=[3], gamma=0.1, warmup_iters=2, warmup_factor=0.1)
    loss = sum(p.float().sum() for p in model.parameters())
    loss.backward()
    opt.step()
    sched.step()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "iteration": 1, "world_size": 1, "rng": [rng_state()],
            "config": config}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, _, _ = build("seqformer_tiny", seed=0)
    config = {"model": model_cfg("seqformer_tiny"), "seed": 1}
    ck = Checkpointer(tmp_path_factory.mktemp("run") / "checkpoints")
    return model, config, ck.save(1, _trained_state(model, config))


def test_our_full_checkpoint_loads_weights_only_and_restores(saved):
    model, config, path = saved
    ckpt = load_file(path)
    assert ckpt["rng"][0]["numpy"][0] == "MT19937" and ckpt["iteration"] == 1
    assert ckpt["optimizer"]["state"] and ckpt["scheduler"]["last_epoch"] == 1
    other, _, _ = build("seqformer_tiny", seed=3)
    restore_model(other, ckpt, path, config)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), model.state_dict().values()))


def test_resume_with_changed_model_config_names_the_keys(saved):
    _, config, path = saved
    changed = {"model": model_cfg("seqformer_tiny", **{"transformer.dec_layers": 1, "num_classes": 7}), "seed": 1}
    changed["model"]["inference"] = {"top_k": 3}  # inference options may change on resume
    other, _, _ = build("seqformer_tiny", seed=3, **{"transformer.dec_layers": 1, "num_classes": 7})
    with pytest.raises(WsovvisError) as e:
        restore_model(other, load_file(path), path, changed)
    msg = str(e.value)
    assert str(path) in msg and "another model config" in msg
    assert "model.num_classes: saved 5, now 7" in msg and "model.transformer.dec_layers: saved 2, now 1" in msg
    assert "inference" not in msg
    assert model_config_differences(config, {"model": {**config["model"], "weights": "x.pth"}}) == []


def test_checkpoint_that_does_not_fit_names_the_keys_even_without_a_config(saved):
    _, _, path = saved
    ckpt = load_file(path)
    ckpt.pop("config")
    other, _, _ = build("seqformer_tiny", seed=3, num_classes=7)
    with pytest.raises(WsovvisError, match=r"does not fit the model: .*of another shape \(e.g. class_embed.0.weight"):
        restore_model(other, ckpt, path, None)


def test_tampered_run_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "PWNED"
    ck = Checkpointer(tmp_path / "checkpoints")
    path = ck.save(4, {"model": {"w": torch.zeros(1)}, "iteration": 4, "config": {"x": MarkerPayload(marker)}})
    with pytest.raises(WsovvisError, match=r"ckpt_0000004.pth: checkpoint holds a disallowed.*system.*--trust_pickle"):
        load_file(ck.latest())
    assert not marker.exists()
    assert load_file(path, trust_pickle=True)["iteration"] == 4
    assert marker.exists()  # the opt-in is real
