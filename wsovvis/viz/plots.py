"""PNG plots of a training run from its ``metrics.jsonl``: loss curves, learning rate, AP history.

`plot_run(run_dir)` writes ``plots/loss.png`` (total loss and every loss term over iterations, log
scale, with a moving average) and ``plots/ap.png`` (every ``eval/AP*`` stat over iterations) when
there are evaluation rows. Files are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from wsovvis.utils.io import atomic_write_bytes
from wsovvis.utils.jsonl import read_jsonl as read_metrics  # viz reads metrics.jsonl without importing the engine

LOSS_EXCLUDE = {"iteration", "time", "lr", "grad_norm", "iter_time", "data_time", "memory_mb"}


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or y.size < n:
        return y
    kernel = np.ones(n) / n
    head = np.cumsum(y[: n - 1]) / np.arange(1, n)
    return np.concatenate([head, np.convolve(y, kernel, mode="valid")])


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def loss_keys(rows: list[dict]) -> list[str]:
    keys = {k for r in rows for k, v in r.items()
            if isinstance(v, (int, float)) and k not in LOSS_EXCLUDE and not k.startswith("eval/")}
    # The total first, then the final-layer terms, then the auxiliary ones (`_0`, `_1`, ...).
    return sorted(keys, key=lambda k: (k != "loss", k[-1].isdigit(), k))


def plot_losses(rows: list[dict], path: Path, max_aux: int = 0) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in loss_keys(rows) if not k[-1].isdigit() or max_aux]
    if not keys:
        return None
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    for k in keys:
        x, y = _series(rows, k)
        if x.size == 0:
            continue
        lw = 2.0 if k == "loss" else 1.0
        line, = ax.plot(x, y, alpha=0.25, lw=lw)
        ax.plot(x, _smooth(y, max(1, x.size // 20)), color=line.get_color(), lw=lw, label=k)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted total, unweighted terms)")
    if all((_series(rows, k)[1] > 0).all() for k in keys):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    x, y = _series(rows, "lr")
    if x.size:
        ax_lr.plot(x, y)
    ax_lr.set_xlabel("iteration")
    ax_lr.set_title("learning rate")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_ap(rows: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("eval/AP", "eval/AP50", "eval/AP75", "eval/AR10", "eval/base/AP", "eval/novel/AP")
            if _series(rows, k)[0].size]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        x, y = _series(rows, k)
        ax.plot(x, 100 * y, marker="o", label=k.removeprefix("eval/"))
    ax.set_xlabel("iteration")
    ax.set_ylabel("%")
    ax.set_title("evaluation")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the plots of ``run_dir``; returns the files written."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    out = [plot_losses(rows, run_dir / "plots" / "loss.png"), plot_ap(rows, run_dir / "plots" / "ap.png")]
    return [p for p in out if p is not None]
