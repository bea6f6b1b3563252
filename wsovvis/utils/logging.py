"""One logger namespace for the package; the CLI configures it once."""

from __future__ import annotations

import logging
import sys


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("wsovvis") else f"wsovvis.{name}")


def setup_logging(level: int = logging.INFO) -> None:
    """Log ``wsovvis.*`` to stderr as ``[wsovvis] message``; idempotent."""
    root = logging.getLogger("wsovvis")
    if any(getattr(h, "_wsovvis", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    handler._wsovvis = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
