"""Training checkpoints: atomic files, the last K kept, RNG states for exact resumption.

Layout in ``<run>/checkpoints/``: ``ckpt_<iteration:07d>.pth`` (iteration = number of completed
optimiser steps) and ``model_final.pth`` (weights only, for ``model.weights=``). Each full
checkpoint holds::

    model, optimizer, scheduler, scaler (state dicts), iteration (int),
    rng (list, one entry per rank: python, numpy, torch, cuda states), world_size, config (dict)
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_bytes
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

CKPT_RE = re.compile(r"^ckpt_(\d{7,})\.pth$")


def rng_state() -> dict:
    """This process's random states (python, numpy, torch CPU, and CUDA when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` into memory, then an atomic write: a killed job never leaves a truncated file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated / not a torch file
        raise WsovvisError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e


class Checkpointer:
    """Writes and finds checkpoints in one directory; keeps the newest ``keep_last``."""

    def __init__(self, directory: str | Path, keep_last: int = 3) -> None:
        self.dir = Path(directory)
        self.keep_last = keep_last

    def path(self, iteration: int) -> Path:
        return self.dir / f"ckpt_{iteration:07d}.pth"

    def list(self) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every full checkpoint, oldest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.iterdir():
            m = CKPT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        items = self.list()
        return items[-1][1] if items else None

    def save(self, iteration: int, state: dict) -> Path:
        path = self.path(iteration)
        save_atomic(state, path)
        for _, old in self.list()[:-self.keep_last]:
            old.unlink(missing_ok=True)
        log.info("checkpoint: %s", path)
        return path

    def save_final_weights(self, model_state: dict, config: dict) -> Path:
        path = self.dir / "model_final.pth"
        save_atomic({"model": model_state, "config": config}, path)
        return path

