"""DINOv2 trunk + pseudo-FPN: a frame's features do not depend on the other frames of the batch (issue #13.6).

A small frame is run alone (padded to its own /32 canvas) and beside a larger frame (padded to the
larger canvas, so most of its patches are padding). Its valid-region features must agree. The same
comparison on the raw timm trunk (no attention mask, position embedding over the padded grid) shows
that the padding would otherwise leak in.
"""

from __future__ import annotations

import pytest
import torch

from wsovvis.modeling.backbone.dinov2 import DinoV2Backbone, masked_group_norm


def _canvas(frames: list[torch.Tensor], div: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``[3, h, w]`` frames to one canvas (multiple of ``div``) and its pad mask (True = pad)."""
    H = max(f.shape[1] for f in frames)
    W = max(f.shape[2] for f in frames)
    H, W = -(-H // div) * div, -(-W // div) * div
    x = torch.zeros(len(frames), 3, H, W)
    mask = torch.ones(len(frames), H, W, dtype=torch.bool)
    for i, f in enumerate(frames):
        x[i, :, : f.shape[1], : f.shape[2]] = f
        mask[i, : f.shape[1], : f.shape[2]] = False
    return x, mask


@pytest.fixture(scope="module")
def bb() -> DinoV2Backbone:
    torch.manual_seed(0)
    bb = DinoV2Backbone("s", layers=[0, 1, 2, 3], return_res2=True)  # 4 blocks run (stop early)
    with torch.no_grad():  # LayerScale 1 (random init uses 1e-5): attention must matter for the test to mean anything
        for name, p in bb.vit.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return bb.eval()


def test_frame_features_do_not_depend_on_the_batch(bb):
    g = torch.Generator().manual_seed(1)
    small = torch.randn(3, 50, 75, generator=g)
    large = torch.randn(3, 120, 150, generator=g)
    with torch.no_grad():
        alone = bb(*_canvas([small]))
        batch = bb(*_canvas([small, large]))
    for stage, (feat, mask) in alone.items():
        h, w = feat.shape[-2:]
        valid = ~mask[0]
        a = feat[0][:, valid]
        b = batch[stage][0][0, :, :h, :w][:, valid]
        assert a.abs().max() > 0.1, stage
        assert torch.allclose(a, b, atol=2e-4), (stage, float((a - b).abs().max()))
        assert torch.equal(batch[stage][1][0, :h, :w], mask[0])
        # padded cells are zero
        assert batch[stage][0][0][:, batch[stage][1][0]].abs().max() == 0
    # the larger frame is not padded in either canvas: unchanged by the masking (standard path)
    with torch.no_grad():
        large_alone = bb(*_canvas([large]))
    for stage, (feat, _) in large_alone.items():
        assert torch.allclose(feat[0], batch[stage][0][1, :, : feat.shape[-2], : feat.shape[-1]], atol=2e-4)


def test_raw_trunk_would_leak_padding(bb):
    """Without the attention mask and per-frame position embeddings the small frame's patch tokens change."""
    g = torch.Generator().manual_seed(1)
    small = torch.randn(3, 50, 75, generator=g)
    large = torch.randn(3, 120, 150, generator=g)
    raw = []
    for frames in ([small], [small, large]):
        x, _ = _canvas(frames)
        x = torch.nn.functional.pad(x, (0, (-x.shape[-1]) % 14, 0, (-x.shape[-2]) % 14))
        with torch.no_grad():
            raw.append(bb.vit.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)[0])
    a, b = raw[0][0, :, :4, :6], raw[1][0, :, :4, :6]  # the small frame's 4 x 6 valid patches
    assert (a - b).abs().max() > 1e-2


def test_masked_group_norm_equals_group_norm_when_all_valid():
    gn = torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        gn.weight.uniform_(0.5, 2)
        gn.bias.uniform_(-1, 1)
    x = torch.randn(2, 16, 5, 7)
    assert torch.allclose(masked_group_norm(gn, x, torch.ones(2, 5, 7, dtype=torch.bool)), gn(x), atol=1e-5)
    # statistics over the valid part only: equal to GroupNorm of the cropped map
    valid = torch.zeros(2, 5, 7, dtype=torch.bool)
    valid[:, :3, :4] = True
    out = masked_group_norm(gn, x, valid)
    assert torch.allclose(out[..., :3, :4], gn(x[..., :3, :4]), atol=1e-5)
