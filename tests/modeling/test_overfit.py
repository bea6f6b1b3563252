"""End to end on CPU: ``seqformer_tiny`` built from its config overfits two synthetic clips."""

from __future__ import annotations

import time

import torch

from tests.modeling.helpers import build, square_clip


def test_tiny_model_overfits_two_clips():
    model, criterion, _ = build("seqformer_tiny", seed=0)
    clips = [square_clip(1), square_clip(2)]
    images = torch.stack([c[0] for c in clips])  # [2, T=2, 3, 64, 64]
    targets = [c[1] for c in clips]
    sizes = torch.tensor([[64, 64], [64, 64]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    model.train()
    history = []
    start = time.perf_counter()
    for _ in range(150):
        losses = criterion(model(images, sizes), targets)
        loss = sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(loss.item())
        if len(history) >= 40 and sum(history[-5:]) / 5 <= history[0] / 10:
            break
    elapsed = time.perf_counter() - start
    final = sum(history[-5:]) / 5
    assert final <= history[0] / 10, f"loss {history[0]:.3f} -> {final:.3f} after {len(history)} steps"
    print(f"overfit: {history[0]:.2f} -> {final:.3f} in {len(history)} steps, {elapsed:.1f} s")
    # the trained model finds both objects: matched masks overlap the GT
    model.eval()
    with torch.no_grad():
        out = model(images, sizes)
    probs = out["pred_logits"][0].sigmoid()
    for label in targets[0]["labels"].tolist():
        q = int(probs[:, label].argmax())
        mask = model.mask_logits(out, 0, torch.tensor([q]))[0] > 0  # [T, 16, 16]
        gt = targets[0]["masks"][targets[0]["labels"].tolist().index(label)][:, 2::4, 2::4]
        iou = (mask & gt).sum() / (mask | gt).sum()
        assert iou > 0.5, (label, float(iou))
