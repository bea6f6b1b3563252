"""Pixel-level refinement: guided filtering on a crop, and snapping an outline to the pixel prior."""

import numpy as np

from wsovvis.pseudo.refine import _snap, guided_filter, refine_mask, snap_to_prior, support_box


def _disk(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_support_box_grows_and_clips():
    m = np.zeros((20, 30), bool)
    m[5:8, 10:12] = True
    assert support_box(m, 3) == (slice(2, 11), slice(7, 15))
    assert support_box(m, 100) == (slice(0, 20), slice(0, 30))
    assert support_box(np.zeros((4, 4), bool), 2) is None


def test_guided_refinement_on_the_crop_equals_the_whole_frame():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    patch = np.zeros((15, 20), bool)
    patch[4:9, 6:12] = True
    prior = rng.random((120, 160)).astype(np.float32)
    out = refine_mask(img, patch, "guided", prior, 0.4)
    import cv2

    soft = cv2.resize(patch.astype(np.float32), (160, 120), interpolation=cv2.INTER_LINEAR) * (0.6 + 0.4 * prior)
    whole = guided_filter(img.astype(np.float32) / 255.0, soft.astype(np.float32), 2, 1e-3) > 0.5
    np.testing.assert_array_equal(out, whole)
    assert out.sum() > 0


def test_snap_moves_a_blocky_outline_onto_the_prior():
    h, w = 160, 208
    obj = _disk(h, w, 80, 100, 40)
    # The object's prior is 0.9, the background's 0.3: only their contrast matters, not the levels.
    prior = np.where(obj, 0.9, 0.3).astype(np.float32)
    img = np.where(obj[..., None], 200, 60).astype(np.uint8).repeat(3, -1)
    cells = np.zeros((h // 16, w // 16), bool)  # the disk on a 16-px grid: corners in, curves out
    for i in range(h // 16):
        for j in range(w // 16):
            cells[i, j] = obj[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16].mean() > 0.5
    blocky = np.kron(cells, np.ones((16, 16), bool))
    snapped = snap_to_prior(blocky, prior, img, band_px=8)
    assert _iou(blocky, obj) < 0.93
    assert _iou(snapped, obj) > 0.98
    # Outside the band (more than 8 px from the blocky outline) nothing changes.
    far = _disk(h, w, 80, 100, 20)
    assert snapped[far].all() and not snapped[_disk(h, w, 80, 100, 70) ^ np.ones((h, w), bool)].any()
    # The crop gives what the whole frame gives.
    np.testing.assert_array_equal(snapped, _snap(blocky, prior, img, 8, 0.15, 4))


def test_snap_leaves_the_mask_when_the_prior_has_no_contrast():
    h, w = 100, 100
    m = _disk(h, w, 50, 50, 25)
    img = np.full((h, w, 3), 128, np.uint8)
    flat = np.full((h, w), 0.7, np.float32)
    np.testing.assert_array_equal(snap_to_prior(m, flat, img, band_px=6), m)
    # Inside/outside differ by 0.1 < min_contrast 0.15: unchanged as well.
    weak = np.where(_disk(h, w, 50, 50, 18), 0.8, 0.7).astype(np.float32)
    np.testing.assert_array_equal(snap_to_prior(m, weak, img, band_px=6), m)
    assert snap_to_prior(m, weak, img, band_px=0) is m
