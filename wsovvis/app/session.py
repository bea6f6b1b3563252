"""Where the app writes: one temporary root per server, one sub-folder per browser session.

Nothing goes into the project or the current folder: Gradio's upload cache is pointed at
``<root>/gradio`` (``GRADIO_TEMP_DIR``, read by Gradio when it is imported, so `prepare_environment`
runs first), every preview, plot and ZIP goes to ``<root>/sessions/<session hash>``. A session
folder is removed when its browser tab closes, the root when the server stops.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def prepare_environment(root: Path) -> None:
    """Offline, private Gradio: no telemetry, no version check, uploads cached under ``root``.

    Must run before ``import gradio`` (it reads these variables at import time).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_RUN_HISTORY", "False")


class SessionDirs:
    """Temporary folders of one server: ``root`` (made now) and ``for_session(hash)`` (made on demand)."""

    def __init__(self, parent: str | os.PathLike | None = None, *, cleanup: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wsovvis-app-", dir=parent))
        self.cleanup = cleanup
        if cleanup:
            atexit.register(self.remove_all)

    def for_session(self, session_hash: str | None) -> Path:
        """The folder of one browser session (``shared`` when Gradio gives no session hash)."""
        name = re.sub(r"[^A-Za-z0-9_-]", "_", session_hash or "") or "shared"
        path = self.root / "sessions" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove_session(self, session_hash: str | None) -> None:
        if not session_hash:
            return
        path = self.root / "sessions" / re.sub(r"[^A-Za-z0-9_-]", "_", session_hash)
        shutil.rmtree(path, ignore_errors=True)
        log.debug("removed session folder %s", path)

    def remove_all(self) -> None:
        if self.cleanup:
            shutil.rmtree(self.root, ignore_errors=True)
