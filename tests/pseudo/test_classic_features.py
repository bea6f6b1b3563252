"""The weight-free features' coherence gate (`wsovvis.pseudo.classic_features.flow_coherence`)."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.pseudo.classic_features import ClassicFeatures, flow_coherence


def test_flow_coherence_hand_computed():
    flow = np.zeros((1, 12, 12, 2), np.float32)
    flow[..., 0] = 4.0
    np.testing.assert_allclose(flow_coherence(flow, 0.5, 3), 1.0)  # constant flow: no variance
    # A checkerboard of +-a in x: every 3x3 window holds 5 of one sign and 4 of the other, so
    # mean a/9, mean square a^2, variance a^2 (1 - 1/81) -> 1 / (1 + (80/81) a^2 / sigma^2).
    a, sigma = 0.3, 0.2
    yy, xx = np.mgrid[0:12, 0:12]
    board = np.zeros((1, 12, 12, 2), np.float32)
    board[0, ..., 0] = np.where((yy + xx) % 2 == 0, a, -a)
    expect = 1.0 / (1.0 + (80 / 81) * a * a / (sigma * sigma))
    np.testing.assert_allclose(flow_coherence(board, sigma, 3)[0, 3:9, 3:9], expect, rtol=1e-4)


def test_flow_coherence_keeps_motion_boundaries():
    # Left half still, right half moving 5 px: a centred 5x5 window across the step has variance
    # 6.0 (x = 5 on 2 of 5 columns), but one of the four corner windows lies on one side.
    flow = np.zeros((1, 20, 20, 2), np.float32)
    flow[0, :, 10:, 0] = 5.0
    np.testing.assert_allclose(flow_coherence(flow, 0.2, 5), 1.0)


class _SplashFlow:
    """Stand-in for `FlowEstimator`: columns 16..47 move +3 px in x (an object); columns 112..143
    move 3 px in a checkerboard of directions (spray); the rest is still."""

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape
        f = np.zeros((h, w, 2), np.float32)
        sign = 1.0 if int(a[0, 0]) < int(b[0, 0]) else -1.0  # frames carry their index in pixel (0, 0)
        f[:, 16:48, 0] = 3.0 * sign
        yy, xx = np.mgrid[0:h, 112:144]
        f[:, 112:144, 0] = np.where((yy + xx) % 2 == 0, 3.0, -3.0)
        return f


@pytest.mark.parametrize("coherence_px", [0.2, 0.0])
def test_the_cut_sees_coherent_motion_and_the_outline_prior_sees_all(coherence_px):
    frames = np.full((4, 96, 192, 3), 90, np.uint8)
    frames[:, :, 16:48] = (200, 40, 40)  # object and spray share one colour: only the flow differs
    frames[:, :, 112:144] = (200, 40, 40)
    frames[:, 0, 0, 0] = np.arange(4)
    ext = ClassicFeatures(fb_check=False, coherence_px=coherence_px)
    ext.flow = _SplashFlow()
    feats = ext(frames)
    p = ext.cell_size(96, 192)
    obj_cells = feats.saliency[:, 1:-1, 16 // p + 1:48 // p - 1]
    spray_cells = feats.saliency[:, 1:-1, 112 // p + 1:144 // p - 1]
    assert obj_cells.min() > 0.5
    if coherence_px > 0:
        assert spray_cells.max() < 0.1 * obj_cells.min()
    else:
        assert spray_cells.min() > 0.5
    # The pixel prior that places outlines is not gated: the spray is as salient as the object there.
    pix = feats.pixel_saliency
    assert pix[:, 8:-8, 120:136].mean() > 0.8 * pix[:, 8:-8, 24:40].mean() > 0.3
