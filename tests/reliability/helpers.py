"""Malicious pickles for the reliability tests: loading one runs ``touch <marker>``, which must not appear."""

from __future__ import annotations

import os
from pathlib import Path


class MarkerPayload:
    """Unpickling this calls ``os.system('touch <marker>')``; a safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))
