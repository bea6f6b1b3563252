"""Quality measures of pseudo tubes against ground truth (used by ``bench/pseudo_davis.py`` and tests).

* `region_similarity`: DAVIS J of one sequence: mean over frames of IoU(union of all tubes, foreground GT)
  (a frame where both are empty counts 1, as in the DAVIS toolkit).
* `identity_switches`: per tube, the number of times the GT label that clearly covers it (at least
  ``share`` = 2/3 of its pixels; 0 = background counts as a label) changes between the frames where
  one label does: a tube that holds the wall in frame 0 and the runner in frame 8 switches once,
  while a sliver on an object's outline, half inside and half out, is undecided, not a switch.
* `tube_iou`: spatio-temporal IoU of two tubes (sum of intersections / sum of unions over frames).
* `spearman`: rank correlation (average ranks for ties) of two equal-length sequences.
"""

from __future__ import annotations

import numpy as np


def region_similarity(pred_fg: np.ndarray, gt_fg: np.ndarray) -> float:
    """DAVIS J of one sequence: ``pred_fg``, ``gt_fg`` bool ``[T, H, W]`` -> mean per-frame IoU."""
    if pred_fg.shape != gt_fg.shape:
        raise ValueError(f"prediction {pred_fg.shape} and GT {gt_fg.shape} differ in shape")
    inter = np.logical_and(pred_fg, gt_fg).reshape(len(gt_fg), -1).sum(1)
    union = np.logical_or(pred_fg, gt_fg).reshape(len(gt_fg), -1).sum(1)
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))


def majority_labels(tube: dict[int, np.ndarray], gt_ids: np.ndarray, share: float = 2 / 3) -> dict[int, int]:
    """Frame -> GT id (``gt_ids`` int ``[T, H, W]``, 0 = background) covering at least ``share`` of the
    tube's mask there (frames without such a label are left out)."""
    out = {}
    for t in sorted(tube):
        m = tube[t]
        if m.any():
            counts = np.bincount(gt_ids[t][m].ravel())
            if counts.max() >= share * m.sum():
                out[t] = int(counts.argmax())
    return out


def identity_switches(tubes: list[dict[int, np.ndarray]], gt_ids: np.ndarray, share: float = 2 / 3) -> int:
    """Sum over tubes (frame -> bool ``[H, W]`` mask) of the changes of their clear-majority GT label."""
    n = 0
    for tube in tubes:
        labels = list(majority_labels(tube, gt_ids, share).values())
        n += sum(a != b for a, b in zip(labels, labels[1:]))
    return n


def tube_iou(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> float:
    """Spatio-temporal IoU of two tubes (frame -> bool mask; absent frames are empty)."""
    inter = union = 0
    for t in set(a) | set(b):
        ma, mb = a.get(t), b.get(t)
        if ma is None:
            union += int(mb.sum())
        elif mb is None:
            union += int(ma.sum())
        else:
            inter += int(np.logical_and(ma, mb).sum())
            union += int(np.logical_or(ma, mb).sum())
    return inter / union if union else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # Ties share the mean of their ranks.
    vals, inv = np.unique(x, return_inverse=True)
    sums = np.bincount(inv, weights=ranks)
    counts = np.bincount(inv)
    return (sums / counts)[inv]


def spearman(x, y) -> float:
    """Spearman's rho of two sequences (nan when fewer than 2 items or one is constant)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) != len(y):
        raise ValueError(f"lengths differ: {len(x)} vs {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _better(a: tuple, b: tuple, tol: float = 1e-12) -> bool:
    """Lexicographic ``a > b`` where elements within ``tol`` of each other count as equal."""
    for x, y in zip(a, b):
        if x > y + tol:
            return True
        if x < y - tol:
            return False
    return False


def choose(names: list[str], score) -> tuple[str, tuple]:
    """``(name, its score as a tuple)`` of the name with the best ``score(name)``: a float, or a tuple of
    floats compared in order (the later ones break ties of the earlier ones). Exact ties go to the
    earlier name."""
    best, best_score = None, (-np.inf,)
    for name in names:
        sc = score(name)
        sc = tuple(sc) if isinstance(sc, tuple | list) else (sc,)
        if _better(sc, best_score):
            best, best_score = name, sc
    return best, best_score


def leave_one_out(per_config: dict[str, dict[str, object]], select_score, order: list[str] | None = None
                  ) -> list[dict]:
    """Leave-one-sequence-out model selection.

    Args:
        per_config: config name -> {sequence -> that config's output on it}.
        select_score: ``f({sequence: output}) -> float`` or a tuple of floats compared in order (the
            later ones break ties of the earlier ones), higher is better; e.g. (AP50, mean J) of the subset.
        order: config names in order of preference for what is still tied (default: ``per_config``'s order).
    Returns:
        one fold per sequence: ``{"held_out", "chosen", "train_score"}``: the config with the best
        ``select_score`` on every other sequence, never looking at the held-out one (``train_score``:
        its first element).
    """
    names = order or list(per_config)
    seqs = sorted(next(iter(per_config.values())))
    folds = []
    for held in seqs:
        train = [s for s in seqs if s != held]
        best, best_score = choose(names, lambda n, train=train: select_score({s: per_config[n][s] for s in train}))
        folds.append({"held_out": held, "chosen": best, "train_score": float(best_score[0])})
    return folds
