"""Per-category AP bar chart (PNG), for reports and the demo."""

from __future__ import annotations

import io
import os

from wsovvis.utils.io import atomic_write_bytes


def plot_per_category_ap(result, path: str | os.PathLike, max_categories: int = 60, title: str | None = None) -> None:
    """Horizontal bars of AP ×100 per category of an `EvalResult` (categories without GT left out).

    With more than ``max_categories`` categories, the best and the worst halves are shown.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = sorted((r for r in result.per_category() if r["AP"] is not None), key=lambda r: r["AP"], reverse=True)
    if len(rows) > max_categories:
        half = max_categories // 2
        rows = rows[:half] + rows[-half:]
    fig, ax = plt.subplots(figsize=(7, 0.25 * max(len(rows), 4) + 1.2))
    names = [f"{r['name']} ({r['num_gt']})" for r in rows]
    vals = [100 * r["AP"] for r in rows]
    ax.barh(range(len(rows)), vals, color="#4c72b0")
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("AP (IoU .50:.95) x100; (GT tracks) after the name")
    ax.set_title(title or f"per-category AP, overall AP {100 * max(result.stats['AP'], 0):.1f}")
    if not rows:
        ax.text(50, 0, "no category with ground truth", ha="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
