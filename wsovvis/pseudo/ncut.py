"""Normalized cut on a patch graph: affinity, the second eigenvector, and a two-way split.

The generalized problem ``(D - A) x = lambda D x`` of Shi & Malik is solved through the
equivalent symmetric one: ``y`` = the eigenvector of ``M = D^-1/2 A D^-1/2`` with the second
largest eigenvalue ``mu``, then ``x = D^-1/2 y`` and ``lambda = 1 - mu``. ``A = W + eps`` where
``W`` is sparse (binary edges ``cos > tau`` as in TokenCut/MaskCut) and ``eps`` joins every pair
weakly; the ``eps`` term is applied implicitly, so one product with ``M`` costs ``O(nnz(W))``
and ARPACK (``eigsh``) needs a few dozen of them instead of a dense ``O(N^3)`` solve.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

# Below this many nodes a dense solve is cheaper than ARPACK's set-up.
DENSE_BELOW = 300
_CHUNK = 2048  # rows of the similarity matrix formed at a time (bounds memory at large N)
# Binary MaskCut graphs are dense (tau 0.15 joins most pairs): up to this many nodes a dense
# float32 matrix (<= 164 MB) is faster than building CSR; beyond it the graph goes sparse.
MAX_DENSE_NODES = 6400


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def cosine_affinity(feats: np.ndarray, tau: float, max_dense: int = MAX_DENSE_NODES) -> np.ndarray | sp.csr_matrix:
    """Binary graph ``W_ij = 1 if cos(f_i, f_j) > tau`` from features ``[N, D]`` (any norm).

    Dense ``float32 [N, N]`` up to ``max_dense`` nodes; above, CSR built in row chunks so the
    dense similarity never exists at once.
    """
    f = l2_normalize(np.asarray(feats, dtype=np.float32))
    n = f.shape[0]
    if n <= max_dense:
        return (f @ f.T > tau).astype(np.float32)
    rows, cols = [], []
    for s in range(0, n, _CHUNK):
        sim = f[s:s + _CHUNK] @ f.T
        r, c = np.nonzero(sim > tau)
        rows.append(r + s)
        cols.append(c)
    r = np.concatenate(rows) if rows else np.zeros(0, int)
    c = np.concatenate(cols) if cols else np.zeros(0, int)
    return sp.csr_matrix((np.ones(len(r), dtype=np.float64), (r, c)), shape=(n, n))


def _mv(w: sp.spmatrix | np.ndarray, u: np.ndarray) -> np.ndarray:
    """``w @ u``. Small dense products use einsum's single-threaded loop: multi-threaded BLAS gemv
    is ~40x slower on a busy 2-core machine (thread hand-off dominates a sub-millisecond product)."""
    if not sp.issparse(w) and w.shape[0] <= 4096:
        return np.einsum("ij,j->i", w, u.astype(w.dtype, copy=False))
    return w @ u.astype(w.dtype, copy=False)


def dense_affinity(w: sp.spmatrix | np.ndarray, eps: float) -> np.ndarray:
    """``W + eps`` as a dense ``float64 [N, N]`` (what MaskCut builds; used by the dense reference)."""
    a = w.toarray() if sp.issparse(w) else np.asarray(w, dtype=np.float64)
    return a + eps


def _degrees(w: sp.spmatrix | np.ndarray, eps: float) -> np.ndarray:
    n = w.shape[0]
    return np.asarray(w.sum(axis=1), dtype=np.float64).ravel() + eps * n


def second_eigenvector(w: sp.spmatrix | np.ndarray, eps: float = 1e-5, tol: float = 1e-6,
                       seed: int = 0) -> tuple[np.ndarray, float]:
    """Second-smallest generalized eigenvector of ``(D - A) x = lambda D x`` with ``A = W + eps``.

    Args:
        w: symmetric non-negative affinity ``[N, N]`` (sparse or dense), without the ``eps`` term.
    Returns:
        ``x [N]`` (sign arbitrary, scaled to unit norm) and its eigenvalue ``lambda`` (0..2).
    """
    n = w.shape[0]
    if n < 2:
        return np.zeros(n), 0.0
    d = _degrees(w, eps)
    dm = 1.0 / np.sqrt(d)
    if n < DENSE_BELOW:
        m = dm[:, None] * dense_affinity(w, eps) * dm[None, :]
        vals, vecs = np.linalg.eigh(m)
        y, mu = vecs[:, -2], vals[-2]
    else:
        ws = w if sp.issparse(w) else np.asarray(w)
        # Products run in W's own dtype (_mv): a float32 matrix times a float64 vector is upcast per call.

        def matvec(v: np.ndarray) -> np.ndarray:
            u = dm * np.asarray(v).ravel()
            return dm * _mv(ws, u).astype(np.float64) + eps * dm * u.sum()

        op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        # A deterministic start vector makes the sign and the result reproducible run to run.
        v0 = np.random.default_rng(seed).standard_normal(n)
        try:
            vals, vecs = eigsh(op, k=2, which="LA", v0=v0, tol=tol, ncv=min(n, 24), maxiter=20 * n)
            order = np.argsort(vals)
            y, mu = vecs[:, order[0]], vals[order[0]]
        except (ArpackNoConvergence, ArpackError):
            # Nearly disconnected graphs give clustered eigenvalues that ARPACK may not separate.
            m = dm[:, None] * dense_affinity(w, eps) * dm[None, :]
            vals, vecs = scipy.linalg.eigh(m, subset_by_index=[n - 2, n - 1])
            y, mu = vecs[:, 0], vals[0]
    x = dm * y
    x /= max(np.linalg.norm(x), 1e-12)
    return x, float(1.0 - mu)


def dense_generalized_eigenvector(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Reference solve of MaskCut: ``scipy.linalg.eigh(D - A, D)``'s second eigenvector (``a`` dense ``[N, N]``)."""
    d = np.diag(a.sum(axis=1))
    vals, vecs = scipy.linalg.eigh(d - a, d, subset_by_index=[1, 1])
    x = vecs[:, 0]
    return x / max(np.linalg.norm(x), 1e-12), float(vals[0])


def ncut_value(w: sp.spmatrix | np.ndarray, eps: float, part: np.ndarray) -> float:
    """``cut(S, ~S) / vol(S) + cut(S, ~S) / vol(~S)`` of the boolean partition ``part [N]`` (0..2, lower is cleaner)."""
    n = w.shape[0]
    k = int(part.sum())
    if k == 0 or k == n:
        return 2.0
    d = _degrees(w, eps)
    p = part.astype(np.float64)
    inner = float(p @ _mv(w, p)) + eps * k * k
    vol_s = float(d[part].sum())
    vol_t = float(d.sum()) - vol_s
    cut = vol_s - inner
    return cut / vol_s + cut / vol_t
