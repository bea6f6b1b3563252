"""Per-frame MaskCut: two-region images, painting, rejection rules, refinement, weight-free features."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.pseudo.classic_features import ClassicFeatures, colour_probability, normalise_saliency
from wsovvis.pseudo.cut import CutParams, cut_frame
from wsovvis.pseudo.refine import guided_filter, refine_mask


def _feats(h: int, w: int, regions: list[tuple[slice, slice, int]], dim: int = 8, noise: float = 0.05,
           seed: int = 0) -> np.ndarray:
    """Background feature e_0 everywhere, e_k inside region k, plus Gaussian noise: ``[h, w, dim]``."""
    rng = np.random.default_rng(seed)
    f = np.zeros((h, w, dim))
    f[..., 0] = 1
    for ys, xs, k in regions:
        f[ys, xs] = 0
        f[ys, xs, k] = 1
    return f + noise * rng.standard_normal(f.shape)


def test_two_region_image_is_cut_exactly_on_a_non_square_grid():
    h, w = 18, 30  # non-square grid: painting and corners must use h x w
    truth = np.zeros((h, w), bool)
    truth[5:12, 8:19] = True
    masks = cut_frame(_feats(h, w, [(slice(5, 12), slice(8, 19), 1)]), CutParams(tau=0.5, num_cuts=3))
    assert len(masks) == 1  # the second cut splits a structureless background: ncut > max_ncut
    np.testing.assert_array_equal(masks[0].mask, truth)
    assert masks[0].ncut < 0.05


def test_foreground_is_the_object_even_when_it_is_the_larger_side():
    # Object covering 40% of the grid, away from the corners: the corner rule flips the eigenvector.
    h, w = 20, 20
    truth = np.zeros((h, w), bool)
    truth[3:17, 4:15] = True
    masks = cut_frame(_feats(h, w, [(slice(3, 17), slice(4, 15), 2)]), CutParams(tau=0.5, num_cuts=1))
    np.testing.assert_array_equal(masks[0].mask, truth)


def test_painting_finds_two_objects_disjointly():
    h, w = 24, 32
    regs = [(slice(2, 9), slice(3, 11), 1), (slice(14, 21), slice(18, 28), 2)]
    masks = cut_frame(_feats(h, w, regs), CutParams(tau=0.5, num_cuts=4))
    assert len(masks) == 2
    found = sorted((int(m.mask.sum()), tuple(np.argwhere(m.mask).min(0))) for m in masks)
    assert found == [(56, (2, 3)), (70, (14, 18))]
    assert not (masks[0].mask & masks[1].mask).any()


def test_saliency_rule_and_rejections():
    h, w = 16, 24
    f = _feats(h, w, [(slice(4, 10), slice(5, 12), 1)])
    sal = np.zeros((h, w), np.float32)
    sal[4:10, 5:12] = 0.9
    masks = cut_frame(f, CutParams(tau=0.5, num_cuts=3, fg_rule="saliency", min_saliency=0.3), saliency=sal)
    assert len(masks) == 1 and masks[0].mask.sum() == 42
    assert masks[0].saliency == pytest.approx(0.9)
    # The same object counted as too small (min_frac) or too large (max_frac) is rejected.
    assert cut_frame(f, CutParams(tau=0.5, min_frac=0.2)) == []
    assert cut_frame(f, CutParams(tau=0.5, max_frac=0.05)) == []
    # Low saliency everywhere: nothing passes min_saliency.
    assert cut_frame(f, CutParams(tau=0.5, fg_rule="saliency", min_saliency=0.95), saliency=sal) == []


def test_guided_filter_by_hand_and_refinement_snaps_to_edges():
    # A constant guide makes the filter a box mean: a = 0, b = mean(p).
    guide = np.full((9, 9, 3), 0.5, np.float32)
    src = np.zeros((9, 9), np.float32)
    src[4, 4] = 9.0
    out = guided_filter(guide, src, radius=1, eps=1e-3)
    assert out[4, 4] == pytest.approx(1.0, abs=1e-4)  # mean of the 3x3 means around the centre
    assert out[0, 0] == pytest.approx(0.0, abs=1e-5)
    # Refining a blocky patch mask of a sharp-edged disc recovers the disc better than nearest upsampling.
    h = w = 64
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - 32) ** 2 + (xx - 30) ** 2 <= 15 ** 2
    img = np.where(disc[..., None], 220, 40).astype(np.uint8).repeat(3, axis=2)
    patch = disc.reshape(8, 8, 8, 8).mean(axis=(1, 3)) > 0.5
    iou = {}
    for mode in ("none", "guided"):
        m = refine_mask(img, patch, mode)
        assert m.shape == (h, w)
        iou[mode] = (m & disc).sum() / (m | disc).sum()
    assert iou["guided"] > iou["none"] + 0.1 and iou["guided"] > 0.9


def test_crf_request_without_pydensecrf_falls_back_to_guided(caplog):
    pytest.importorskip("numpy")
    from wsovvis.pseudo import refine

    if refine.crf_available():
        pytest.skip("pydensecrf is installed here; the fallback path cannot be exercised")
    img = np.zeros((16, 16, 3), np.uint8)
    img[4:12, 4:12] = 200
    patch = np.zeros((4, 4), bool)
    patch[1:3, 1:3] = True
    refine._crf_note_logged = False
    with caplog.at_level("INFO", logger="wsovvis"):
        m = refine_mask(img, patch, "crf")
    np.testing.assert_array_equal(m, refine_mask(img, patch, "guided"))
    assert "pydensecrf" in caplog.text


def test_saliency_normalisation_and_colour_model_by_hand():
    sal = np.zeros((2, 10, 10), np.float32)
    sal[0, :5] = 4.0
    out = normalise_saliency(sal, floor_px=1.0)
    # Frame 0: its 99.5th percentile is 4 -> 1.0 where moving; frame 1 has nothing above the floor.
    assert out[0, 0, 0] == pytest.approx(1.0) and out[1].max() == 0
    quant = np.zeros((1, 10, 10), np.int16)
    quant[0, :, 5:] = 1
    s = np.zeros((1, 10, 10), np.float32)
    s[0, :, 5:] = 1.0  # colour 1 always moves, colour 0 never
    p = colour_probability(quant, s, bins=2, min_fg=1)
    # Laplace-smoothed histograms over 8 bins: fg (50 + 1)/58 vs bg 1/58 for colour 1.
    assert p[0, 0, 9] == pytest.approx((51 / 58) / (51 / 58 + 1 / 58))
    assert p[0, 0, 0] == pytest.approx((1 / 58) / (1 / 58 + 51 / 58))


def test_classic_features_find_a_moving_square():
    # A textured square slides over a still textured background: the weight-free features must
    # make it the first cut. The square carries one texture (fresh noise every frame would be
    # flicker, which the forward-backward flow check rightly refuses to call motion).
    rng = np.random.default_rng(0)
    bg = (rng.uniform(90, 130, size=(64, 96, 3))).astype(np.uint8)
    frames, truth = [], []
    tex = rng.uniform(0, 40, size=(20 * 24, 1))
    for t in range(4):
        f = bg.copy()
        m = np.zeros((64, 96), bool)
        m[20:40, 20 + 6 * t:44 + 6 * t] = True
        f[m] = np.clip(np.array([200, 60, 40]) + tex, 0, 255).astype(np.uint8)
        frames.append(f)
        truth.append(m)
    fx = ClassicFeatures()
    feats = fx(np.stack(frames))
    assert feats.patch.shape[:3] == (4,) + feats.grid and feats.saliency.shape == (4,) + feats.grid
    masks = cut_frame(feats.patch[1], CutParams(tau=0.5, num_cuts=2, fg_rule="saliency", min_saliency=0.3),
                      saliency=feats.saliency[1])
    assert masks
    m = refine_mask(frames[1], masks[0].mask, "guided")
    iou = (m & truth[1]).sum() / (m | truth[1]).sum()
    assert iou > 0.7


def test_touching_dissimilar_objects_on_one_side_of_the_cut_come_out_separately():
    # Two salient blocks that touch (columns 6..13 and 14..21), with unlike features: one cut puts
    # both against the background; the graph-linked component / recursive split separates them.
    h, w = 16, 28
    f = _feats(h, w, [(slice(4, 12), slice(6, 14), 1), (slice(4, 12), slice(14, 22), 2)])
    sal = np.zeros((h, w), np.float32)
    sal[4:12, 6:22] = 1.0
    masks = cut_frame(f, CutParams(tau=0.5, num_cuts=3, fg_rule="saliency", min_saliency=0.3), saliency=sal)
    got = sorted((int(m.mask.sum()), int(np.argwhere(m.mask)[:, 1].min())) for m in masks)
    assert got == [(64, 6), (64, 14)]
    # With plain pixel connectivity and no split they would have been one mask.
    import wsovvis.pseudo.cut as cut_mod

    merged = cut_mod._component(np.pad(np.ones((8, 16), bool), ((4, 4), (6, 6))), None, sal)
    assert merged.sum() == 128


def test_a_frame_without_cluster_structure_gives_no_cut():
    """All patches alike: every pair is an edge, lambda_2 = 1 and the second eigenvector is an arbitrary vector of
    a degenerate eigenspace (it used to decide masks by floating-point noise, differing from run to run)."""
    from wsovvis.pseudo.cut import CutParams, cut_frame

    rng = np.random.default_rng(0)
    feats = np.ones((12, 16, 8)) + 1e-3 * rng.standard_normal((12, 16, 8))  # cos > tau for every pair
    saliency = np.full((12, 16), 0.9)
    assert cut_frame(feats, CutParams(fg_rule="saliency"), saliency) == []
    assert cut_frame(feats, CutParams()) == []
