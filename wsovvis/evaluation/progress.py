"""tqdm progress for the evaluation loops, imported only when a bar is shown.

``progress``: True shows a bar, False never does, None shows one when stderr is a terminal (tqdm's own
``disable=None`` rule). tqdm is imported lazily: importing it costs about 25 ms (it reads its package
metadata), a noticeable share of a whole ``wsovvis eval`` command that shows no bar (output to a file or pipe).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], progress: bool | None, total: int | None = None, **kw) -> Iterable[T]:
    """``items`` wrapped in a tqdm bar (``leave=False``) when ``progress`` asks for one, else as they are."""
    if progress is False or (progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())):
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, leave=False, **kw)
