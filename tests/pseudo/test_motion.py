"""Forward-backward flow check and the motion saliency built on it (`wsovvis.pseudo.motion`)."""

from __future__ import annotations

import numpy as np

from wsovvis.pseudo.motion import consistent, video_motion


def test_consistent_hand_computed():
    f = np.zeros((4, 5, 2), np.float32)
    f[..., 0] = 2.0
    # Exact reverse: |f + b|^2 = 0 -> consistent.
    assert consistent(f, -f).all()
    # No reverse motion: |f + b|^2 = 4 > 0.01 * (4 + 0) + 0.5 = 0.54 -> inconsistent.
    assert not consistent(f, np.zeros_like(f)).any()
    # Just inside the tolerance: b = -(2 - 0.7): |f + b|^2 = 0.49 <= 0.01 * (4 + 1.69) + 0.5 = 0.557.
    assert consistent(f, -0.65 * f).all()
    # The tolerance grows with the frame size (scale 2: + 0.5 * 4 = 2.0 px^2 -> 4 - 2.04 > 0).
    assert not consistent(f, np.zeros_like(f), scale=2.0).any()
    assert consistent(f, np.zeros_like(f), scale=3.0).all()
    # Small frames keep the 480p tolerance.
    assert not consistent(f, np.zeros_like(f), scale=0.2).any()
    assert consistent(f, -0.65 * f, scale=0.2).all()


class _FakeFlow:
    """Stand-in for `FlowEstimator` (same call): the estimator is asked for t -> t+1 and t+1 -> t.

    Columns 0..9 move +2 px in x and come back exactly (an object); columns 20..29 give +2 px both
    ways (flow that does not come back, as on ripples); the rest is still.
    """

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape
        f = np.zeros((h, w, 2), np.float32)
        forward = int(a[0, 0]) < int(b[0, 0])  # frames carry their index in pixel (0, 0)
        f[:, :10, 0] = 2.0 if forward else -2.0
        f[:, 20:30, 0] = 2.0
        return f


def test_saliency_counts_only_consistent_directions():
    gray = np.zeros((4, 48, 120), np.uint8)
    gray[:, 0, 0] = np.arange(4)
    est = _FakeFlow()
    _, _, on = video_motion(gray, est, fb_check=True)
    _, _, off = video_motion(gray, est, fb_check=False)
    # The camera fit takes the still majority as the camera, so residual = raw flow here.
    inner_obj, inner_flick = (slice(None), slice(1, 47), slice(3, 7)), (slice(None), slice(1, 47), slice(23, 27))
    assert np.allclose(on[inner_obj], 2.0, atol=1e-3) and np.allclose(off[inner_obj], 2.0, atol=1e-3)
    assert np.allclose(off[inner_flick], 2.0, atol=1e-3)  # without the check the flicker is motion
    assert np.all(on[inner_flick] == 0.0)  # consistent in neither direction -> no saliency


def test_no_flow_check_reaches_the_features_through_the_cli():
    import argparse

    from wsovvis.pseudo import cli
    from wsovvis.pseudo.engines import build_engine

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    on = p.parse_args(["--img_root", "x", "--out", "y"])
    off = p.parse_args(["--img_root", "x", "--out", "y", "--no_flow_check"])
    assert build_engine(on).features.fb_check is True
    assert build_engine(off).features.fb_check is False
    # The switch changes the tubes, so it is part of the run's recorded parameters.
    assert cli.provenance_params(off)["no_flow_check"] is True
