"""Model checkpoints load exactly or fail (issue #13 item 2, #11 item 5), and never run code (#11 item 1)."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from tests.modeling.helpers import build
from tests.reliability.helpers import MarkerPayload
from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer.checkpoint import export_state_dict, load_checkpoint


@pytest.fixture(scope="module")
def tiny():
    model, _, _ = build("seqformer_tiny", seed=1)
    return model


def _vnext_file(model, tmp_path, drop=(), extra=None, name="vnext.pth"):
    sd = export_state_dict(model, "vnext")
    assert any(k.startswith("detr.detr.") for k in sd)
    for k in drop:
        del sd[k]
    sd.update(extra or {})
    path = tmp_path / name
    torch.save({"model": sd, "iteration": 100}, path)
    return path


def test_vnext_checkpoint_missing_one_head_tensor_fails_loudly(tiny, tmp_path):
    path = _vnext_file(tiny, tmp_path, drop=["detr.detr.class_embed.1.bias"],
                       extra={"detr.detr.extra_head.weight": torch.zeros(3)})
    other, _, _ = build("seqformer_tiny", seed=2)
    before = other.class_embed[0].weight.clone()
    with pytest.raises(WsovvisError) as e:
        load_checkpoint(other, path)
    msg = str(e.value)
    assert str(path) in msg and "does not fit" in msg
    assert "1 missing from the file: class_embed.1 (1): bias" in msg
    assert "1 unexpected in the file: detr.detr.extra_head (1): weight" in msg  # no rule maps it: kept as is
    assert "model.weights_strict=false" in msg
    assert torch.equal(other.class_embed[0].weight, before)  # nothing half-loaded


def test_weights_strict_false_loads_and_warns_with_counts(tiny, tmp_path, caplog):
    path = _vnext_file(tiny, tmp_path, drop=["detr.detr.class_embed.1.bias"])
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        other, _, _ = build("seqformer_tiny", seed=2, weights=str(path), weights_strict=False)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]
    assert warned and "1 missing" in warned[0].getMessage() and "weights_strict=false" in warned[0].getMessage()
    assert torch.equal(other.class_embed[0].weight, tiny.class_embed[0].weight)
    assert torch.equal(other.mask_head.lay1.weight, tiny.mask_head.lay1.weight)
    with pytest.raises(WsovvisError, match="does not fit"):  # the default config is strict
        build("seqformer_tiny", seed=2, weights=str(path))


def test_a_checkpoint_of_another_model_fails_even_when_not_strict(tmp_path):
    unrelated = {f"encoder.block{i}.weight": torch.zeros(4, 4) for i in range(20)}
    path = tmp_path / "other_model.pth"
    torch.save(unrelated, path)
    model, _, _ = build("seqformer_tiny", seed=3)
    n = len(model.state_dict())
    with pytest.raises(WsovvisError, match=rf"fills only 0 of {n} model tensors.*min_weights_share=0"):
        load_checkpoint(model, path, strict=False)
    report = load_checkpoint(model, path, strict=False, min_share=0.0)
    assert report.loaded == 0 and len(report.unexpected) == 20


def test_malicious_model_weights_are_refused_through_build_model(tiny, tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny.state_dict(), "args": MarkerPayload(marker)}, path)
    with pytest.raises(WsovvisError, match=r"evil.pth: model checkpoint \(model.weights\) holds a disallowed.*system"):
        build("seqformer_tiny", weights=str(path))
    assert not marker.exists()
    # the explicit opt-in loads it (and so runs the payload: that is what it risks)
    build("seqformer_tiny", weights=str(path), trust_pickle=True)
    assert marker.exists()


def test_original_repo_container_with_namespace_is_data(tiny, tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": export_state_dict(tiny, "original"), "args": argparse.Namespace(lr=2e-4), "epoch": 3,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}, path)
    other, _, _ = build("seqformer_tiny", seed=4, weights=str(path))
    assert torch.equal(other.query_embed.weight, tiny.query_embed.weight)


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_backbone_weights_with_a_payload_are_refused_unless_trusted(tiny, tmp_path, suffix):
    import pickle

    marker = tmp_path / "PWNED"
    path = tmp_path / f"backbone{suffix}"
    payload = {"model": tiny.backbone.state_dict(), "meta": MarkerPayload(marker)}
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(WsovvisError, match=rf"backbone{suffix}: tiny_cnn backbone weights holds a disallowed"):
        build("seqformer_tiny", **{"backbone.weights": str(path)})
    assert not marker.exists()
    model, _, _ = build("seqformer_tiny", trust_pickle=True, **{"backbone.weights": str(path)})
    assert marker.exists()
    assert torch.equal(model.backbone.stem[0][0].weight, tiny.backbone.stem[0][0].weight)
