"""``--preset maskcut_paper``: the published per-frame procedure on a two-region image and with a random ViT."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.errors import WsovvisError
from wsovvis.pseudo.engines import build_engine
from wsovvis.pseudo.maskcut_paper import PAPER, paper_cut


def _feats(n: int, regions: list[tuple[slice, slice, int]], dim: int = 8, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(0)
    f = np.zeros((n, n, dim))
    f[..., 0] = 1
    for ys, xs, k in regions:
        f[ys, xs] = 0
        f[ys, xs, k] = 1
    return f + noise * rng.standard_normal(f.shape)


def test_paper_settings_are_the_published_ones():
    assert PAPER == {"tau": 0.15, "num_cuts": 3, "size": 480, "eps": 1e-5, "arch": "dino_vitb8", "refine": "crf"}


def test_two_region_image_is_cut_exactly():
    truth = np.zeros((24, 24), bool)
    truth[6:14, 9:19] = True
    masks = paper_cut(_feats(24, [(slice(6, 14), slice(9, 19), 1)]), tau=0.5, num_cuts=1)
    assert len(masks) == 1
    np.testing.assert_array_equal(masks[0].mask, truth)
    assert masks[0].ncut < 0.05


def test_zeroed_painting_finds_the_second_object_and_masks_stay_disjoint():
    regions = [(slice(2, 10), slice(2, 12), 1), (slice(14, 22), slice(12, 22), 2)]
    masks = paper_cut(_feats(24, regions), tau=0.5, num_cuts=3)
    found = sorted((int(m.mask.sum()) for m in masks), reverse=True)
    assert found[:2] == [80, 80]
    for a in range(len(masks)):
        for b in range(a + 1, len(masks)):
            assert not (masks[a].mask & masks[b].mask).any()
    # The painted patches are zeroed, not removed: the first mask is excluded from later masks only
    # by the earlier-masks-win rule, and both objects come out whole.
    union = masks[0].mask | masks[1].mask
    assert union[2:10, 2:12].all() and union[14:22, 12:22].all()


def test_preset_needs_dino_weights():
    with pytest.raises(WsovvisError, match="--weights"):
        build_engine({"preset": "maskcut_paper"})
    with pytest.raises(WsovvisError, match="not --arch classic"):
        build_engine({"preset": "maskcut_paper", "arch": "classic"})
    with pytest.raises(WsovvisError, match="--preset"):
        build_engine({"preset": "nope"})


def test_random_weight_vit_through_the_preset(tmp_path):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from wsovvis.pseudo.frames import Video
    from wsovvis.pseudo.maskcut_paper import MaskCutPaperEngine
    from wsovvis.pseudo.vit_features import VIT_ARCHS

    torch.manual_seed(0)
    m = timm.create_model(VIT_ARCHS["dino_vits8"][0], pretrained=False, num_classes=0)
    path = tmp_path / "dino_vits8.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in m.state_dict().items()}}, path)
    eng = build_engine({"preset": "maskcut_paper", "arch": "dino_vits8", "weights": str(path), "device": "cpu",
                        "short_side": 64, "min_len": 1})
    assert isinstance(eng, MaskCutPaperEngine)
    assert (eng.cut.tau, eng.cut.num_cuts, eng.size, eng.refine) == (0.15, 3, 64, "crf")
    calls = []
    keys = eng.features.keys
    eng.features.keys = lambda x: calls.append(x.shape) or keys(x)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 48, 80, 3), dtype=np.uint8)
    frames[:, 12:36, 20:52] = [230, 40, 40]
    res = eng(Video(name="v", frame_names=["a.jpg", "b.jpg", "c.jpg"], frames=frames, size=(48, 80)))
    # Every frame went through the ViT as a 64 x 64 square (aspect not kept, as in the paper).
    assert calls == [(1, 64, 64, 3)] * 3
    assert res.num_frames == 3
    for tb in res.tubes:
        assert 0.0 <= tb.score <= 1.0 and all(mk.shape == (48, 80) for mk in tb.masks.values())
