"""The open-vocabulary class head (``model.class_head=text``): shapes, gradients, reduction to a linear
head, any vocabulary size, vocabulary swaps, checkpoints across vocabularies, distillation, score mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.modeling.helpers import build, model_cfg, square_clip
from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer.checkpoint import load_checkpoint
from wsovvis.modeling.seqformer.text_head import (
    TextClassifier,
    geometric_mix,
    load_text_vocab,
    save_text_vocab,
)


def _vocab(tmp_path, K=7, D=12, seed=0, name="vocab"):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((K, D)).astype(np.float32)
    return save_text_vocab(tmp_path / f"{name}.npy", emb, names=[f"c{k}" for k in range(K)])


def _text_model(path, **extra):
    from wsovvis.modeling import build_model

    cfg = model_cfg("seqformer_tiny", **extra)
    cfg["class_head"] = "text"
    cfg["text_head"] = {"embeddings": str(path)}
    torch.manual_seed(0)
    return build_model({"model": cfg})


def test_shapes_and_gradient_flow(tmp_path):
    model, criterion, _ = _text_model(_vocab(tmp_path))
    assert model.class_embed is None and model.num_classes == 7
    img, tgt = square_clip(1)
    tgt["labels"] = torch.tensor([0, 6])
    model.train()
    out = model(img[None], torch.tensor([[64, 64]]))
    Q = model.num_queries
    assert out["pred_logits"].shape == (1, Q, 7)
    assert out["query_embeds"].shape == (1, Q, 12)
    assert torch.allclose(out["query_embeds"].norm(dim=-1), torch.ones(1, Q), atol=1e-5)
    assert all(a["pred_logits"].shape == (1, Q, 7) and "query_embeds" in a for a in out["aux_outputs"])
    losses = criterion(out, [tgt])
    loss = sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)
    loss.backward()
    th = model.text_head
    for name, p in [("proj0", th.proj[0].weight), ("proj_last", th.proj[-1].weight), ("scale", th.logit_scale),
                    ("background", th.background), ("bias", th.bias)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the vocabulary is not a parameter and not in the checkpoint
    assert not any(k.endswith(".text") for k in model.state_dict())


@pytest.mark.parametrize("normalize", [False, True])
def test_reduces_to_a_linear_head_with_one_hot_text(normalize):
    torch.manual_seed(0)
    C, K = 16, 5
    head = TextClassifier(C, K, num_layers=1, text_embeddings=torch.eye(K), normalize_queries=normalize)
    with torch.no_grad():
        head.bias.fill_(0.3)
        head.logit_scale.fill_(np.log(7.0))
    hs = torch.randn(2, 9, C)
    logits, emb = head(hs, 0)
    P, p0 = head.proj[0].weight, head.proj[0].bias  # [K, C], [K]
    bg = torch.nn.functional.normalize(head.background, dim=0)
    A = 7.0 * (torch.eye(K) - bg[None])  # text rows minus the background, times the scale
    lin = nn.Linear(C, K)
    with torch.no_grad():
        if normalize:  # a linear head on the unit query embedding
            lin = nn.Linear(K, K)
            lin.weight.copy_(A)
            lin.bias.fill_(0.3)
            expected = lin(emb)
        else:  # the whole head is Linear(C, K)
            lin.weight.copy_(A @ P)
            lin.bias.copy_(A @ p0 + 0.3)
            expected = lin(hs)
    assert torch.allclose(logits, expected, atol=1e-5)
    # by hand: s * (e_k - e . b) + bias
    head2 = TextClassifier(C, K, 1, torch.eye(K), normalize_queries=False)
    with torch.no_grad():
        head2.background.copy_(torch.ones(K))
    l2, e2 = head2(hs, 0)
    bgn = torch.ones(K) / np.sqrt(K)
    manual = head2.scale() * (e2 - (e2 @ bgn)[..., None]) + head2.bias
    assert torch.allclose(l2, manual, atol=1e-5)


def test_any_vocabulary_size_and_swap(tmp_path):
    model, _, _ = _text_model(_vocab(tmp_path, K=7))
    model.eval()
    img, _ = square_clip(2)
    with torch.no_grad():
        base = model(img[None], torch.tensor([[64, 64]]))["pred_logits"]
        full = load_text_vocab(tmp_path / "vocab.npy").embeddings
        for K in (1, 3, 50):
            rows = np.concatenate([full, np.random.default_rng(K).standard_normal((max(0, K - 7), 12))])[:K]
            model.set_vocabulary(rows)
            logits = model(img[None], torch.tensor([[64, 64]]))["pred_logits"]
            assert logits.shape[-1] == K and model.num_classes == K
            shared = min(K, 7)
            # a class's score does not depend on which other names are in the vocabulary
            assert torch.allclose(logits[..., :shared], base[..., :shared], atol=1e-5)


def test_mismatched_embedding_dimension_names_both(tmp_path):
    model, _, _ = _text_model(_vocab(tmp_path, D=12))
    with pytest.raises(WsovvisError, match=r"dimension 5 .*dimension 12"):
        model.set_vocabulary(np.ones((3, 5), dtype=np.float32), "other.npy")
    # a checkpoint trained with D=12 loaded into a model whose vocabulary has D=8
    ckpt = tmp_path / "m.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    other = _vocab(tmp_path, K=4, D=8, name="d8")
    with pytest.raises(WsovvisError, match=r"12 dimensions .* have 8"):
        _text_model(other, weights=str(ckpt))
    small, _, _ = _text_model(other)
    with pytest.raises(WsovvisError, match=r"12 dimensions .* have 8"):
        load_checkpoint(small, str(ckpt))


def test_checkpoint_works_with_another_vocabulary(tmp_path):
    model, _, _ = _text_model(_vocab(tmp_path, K=7, D=12))
    with torch.no_grad():
        model.text_head.logit_scale.fill_(2.5)
    ckpt = tmp_path / "m.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    full = load_text_vocab(tmp_path / "vocab.npy")
    sub = save_text_vocab(tmp_path / "sub.npy", full.embeddings[[5, 2]], names=["c5", "c2"])
    other, _, _ = _text_model(sub, weights=str(ckpt))
    assert other.num_classes == 2
    img, _ = square_clip(3)
    model.eval()
    other.eval()
    with torch.no_grad():
        a = model(img[None], torch.tensor([[64, 64]]))["pred_logits"]
        b = other(img[None], torch.tensor([[64, 64]]))["pred_logits"]
    assert torch.allclose(b, a[..., [5, 2]], atol=1e-5)


def test_config_errors(tmp_path):
    with pytest.raises(WsovvisError, match="model.class_head"):
        build("seqformer_tiny", class_head="softmax")
    from wsovvis.modeling import build_model

    with pytest.raises(WsovvisError, match="text_head.embeddings"):
        build_model({"model": {**model_cfg("seqformer_tiny"), "class_head": "text"}})
    with pytest.raises(WsovvisError, match="distill_weight"):
        build("seqformer_tiny", **{"loss.distill_weight": 1.0})
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones(4))
    with pytest.raises(WsovvisError, match=r"bad.npy: text embeddings must be a float array \[K, D\]"):
        _text_model(bad)
    with pytest.raises(WsovvisError, match="only be swapped with model.class_head=text"):
        build("seqformer_tiny")[0].set_vocabulary(np.ones((2, 4)))


def test_distillation_loss(tmp_path):
    model, criterion, _ = _text_model(_vocab(tmp_path), **{"loss.distill_weight": 0.5, "loss.distill_type": "cosine"})
    assert criterion.weight_dict["loss_distill"] == 0.5 and criterion.weight_dict["loss_distill_0"] == 0.5
    img, tgt = square_clip(1)
    tgt["labels"] = torch.tensor([0, 3])
    model.train()
    out = model(img[None], torch.tensor([[64, 64]]))
    with pytest.raises(WsovvisError, match="data.tube_embeddings"):
        criterion(out, [tgt])
    indices = criterion.matcher(out, [tgt])
    src, t_idx = indices[0]
    q = out["query_embeds"][0, src].detach()
    # targets equal to the matched queries' own embeddings: zero loss; their negatives: 2 per instance
    emb = torch.zeros(2, 12)
    emb[t_idx] = q
    tgt["embeddings"] = emb
    zero = criterion.loss_distill(out, [tgt], indices, torch.tensor(2.0), {})["loss_distill"]
    assert abs(zero.item()) < 1e-5
    tgt["embeddings"] = -emb
    two = criterion.loss_distill(out, [tgt], indices, torch.tensor(2.0), {})["loss_distill"]
    assert abs(two.item() - 2.0) < 1e-4
    tgt["has_embedding"] = torch.tensor([True, False])
    one = criterion.loss_distill(out, [tgt], indices, torch.tensor(2.0), {})["loss_distill"]
    assert abs(one.item() - 1.0) < 1e-4  # the instance without a cached embedding is left out
    losses = criterion(out, [tgt])
    assert "loss_distill" in losses and "loss_distill_0" in losses
    losses["loss_distill"].backward()
    assert model.text_head.proj[-1].weight.grad.abs().sum() > 0
    # l1 on unit vectors: |q - (-q)|_1 = 2 |q|_1
    criterion.distill_type = "l1"
    tgt.pop("has_embedding")
    l1 = criterion.loss_distill(out, [tgt], indices, torch.tensor(1.0), {})["loss_distill"]
    assert torch.allclose(l1, 2 * q.abs().sum(), atol=1e-4)


def test_geometric_mix_both_ways():
    model_p = torch.tensor([[0.9, 0.1, 0.4]])
    clip_p = torch.tensor([[0.2, 0.8, 0.4]])
    assert torch.allclose(geometric_mix(model_p, clip_p, 0.0).float(), model_p)
    assert torch.allclose(geometric_mix(model_p, clip_p, 1.0).float(), clip_p)
    half = geometric_mix(model_p, clip_p, 0.5).float()
    assert torch.allclose(half, (model_p * clip_p).sqrt())
    # the ranking follows the model at w=0 and CLIP at w=1
    assert int(geometric_mix(model_p, clip_p, 0.0).argmax()) == 0
    assert int(geometric_mix(model_p, clip_p, 1.0).argmax()) == 1
    with pytest.raises(WsovvisError, match=r"\[0, 1\]"):
        geometric_mix(model_p, clip_p, 1.5)
    with pytest.raises(WsovvisError, match="differ"):
        geometric_mix(model_p, clip_p[:, :2], 0.5)
