"""One logger namespace for the package; the CLI configures it once."""

from __future__ import annotations

import logging
import sys


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("wsovvis") else f"wsovvis.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time.

    Binding the stream once breaks after pytest's ``capsys`` (or any redirect) closes the
    stream that was current when logging was set up.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Log ``wsovvis.*`` to stderr as ``[wsovvis] message``; idempotent."""
    root = logging.getLogger("wsovvis")
    if any(getattr(h, "_wsovvis", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    handler._wsovvis = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
