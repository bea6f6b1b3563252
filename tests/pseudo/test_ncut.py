"""Normalized cut core: eigenvector vs the dense generalized solve, ncut values by hand, affinities."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from wsovvis.pseudo.ncut import (
    DENSE_BELOW,
    cosine_affinity,
    dense_affinity,
    dense_generalized_eigenvector,
    ncut_value,
    second_eigenvector,
)


def _two_cliques(n_a: int, n_b: int, cross: int, seed: int = 0) -> np.ndarray:
    """Two dense groups joined by ``cross`` random edges (symmetric 0/1 matrix)."""
    n = n_a + n_b
    w = np.zeros((n, n), np.float32)
    w[:n_a, :n_a] = 1
    w[n_a:, n_a:] = 1
    rng = np.random.default_rng(seed)
    for _ in range(cross):
        i, j = int(rng.integers(n_a)), int(n_a + rng.integers(n_b))
        w[i, j] = w[j, i] = 1
    return w


@pytest.mark.parametrize("n_a,n_b", [(30, 50), (150, 250)])  # dense path, ARPACK path
def test_second_eigenvector_splits_cliques_like_dense_eigh(n_a, n_b):
    w = _two_cliques(n_a, n_b, cross=5)
    assert (n_a + n_b < DENSE_BELOW) == (n_a == 30)
    x, lam = second_eigenvector(w, eps=1e-5)
    part = x > x.mean()
    # Each clique falls entirely on one side, and the two sides differ.
    assert part[:n_a].all() or not part[:n_a].any()
    assert part[n_a:].all() or not part[n_a:].any()
    assert part[0] != part[-1]
    y, lam_ref = dense_generalized_eigenvector(dense_affinity(w, 1e-5))
    assert abs(float(np.corrcoef(x, y)[0, 1])) > 0.9999
    assert lam == pytest.approx(lam_ref, abs=1e-5)  # lambda = 1 - mu: absolute precision of mu
    assert 0 < lam < 0.05  # nearly disconnected groups: small generalized eigenvalue


def test_sparse_and_dense_affinities_give_the_same_vector():
    rng = np.random.default_rng(1)
    centres = np.eye(8)[[0, 3]]
    feats = np.concatenate([centres[0] + 0.2 * rng.standard_normal((200, 8)),
                            centres[1] + 0.2 * rng.standard_normal((220, 8))])
    dense = cosine_affinity(feats, 0.3)
    sparse = cosine_affinity(feats, 0.3, max_dense=0)
    assert isinstance(dense, np.ndarray) and sp.issparse(sparse)
    np.testing.assert_array_equal(dense, sparse.toarray())
    x1, _ = second_eigenvector(dense)
    x2, _ = second_eigenvector(sparse)
    assert abs(float(x1 @ x2)) > 0.9999


def test_cosine_affinity_is_binary_threshold():
    f = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    w = cosine_affinity(f, 0.5)
    # cos(f0, f1) = 0.995 > 0.5, cos(f0, f2) = 0, cos(f1, f2) = 0.0995; the diagonal is 1.
    np.testing.assert_array_equal(w, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def test_ncut_value_by_hand():
    # Path 0-1-2-3 with unit weights; S = {0, 1}: cut = 1 (edge 1-2), vol(S) = 1 + 2, vol(T) = 2 + 1.
    w = np.zeros((4, 4))
    for i in range(3):
        w[i, i + 1] = w[i + 1, i] = 1
    assert ncut_value(w, 0.0, np.array([True, True, False, False])) == pytest.approx(1 / 3 + 1 / 3)
    # S = {0}: cut = 1, vol(S) = 1, vol(T) = 5.
    assert ncut_value(w, 0.0, np.array([True, False, False, False])) == pytest.approx(1 + 1 / 5)
    # With eps every pair gains eps: S = {0}: cut = 1 + 3 eps, vol(S) = 1 + 4 eps, vol(T) = 5 + 12 eps.
    eps = 0.01
    expected = (1 + 3 * eps) / (1 + 4 * eps) + (1 + 3 * eps) / (5 + 12 * eps)
    assert ncut_value(w, eps, np.array([True, False, False, False])) == pytest.approx(expected)
    assert ncut_value(w, 0.0, np.zeros(4, bool)) == 2.0
