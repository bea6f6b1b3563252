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
from wsovvis.utils.safe_load import load_untrusted
from wsovvis.utils.schema import flatten

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


def load_file(path: str | Path, map_location: str | torch.device = "cpu", trust_pickle: bool = False) -> dict:
    """A full training checkpoint, read without running code (`wsovvis.utils.safe_load`).

    Our checkpoints hold only tensors, numbers, strings, plain containers and the numpy RNG state, so a
    file holding anything else was not written by wsovvis and is refused unless ``trust_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: checkpoint does not exist")
    obj = load_untrusted(path, what="checkpoint", trust_pickle=trust_pickle, map_location=map_location)
    if not isinstance(obj, dict):
        raise WsovvisError(f"{path}: not a wsovvis checkpoint (expected a dict, got {type(obj).__name__})")
    return obj


# model options that do not change the network's tensors: they may differ between a run and its resume
RESUME_FREE_MODEL_KEYS = ("model.inference", "model.weights", "model.weights_strict", "model.min_weights_share",
                          "model.trust_pickle", "model.msda_impl")


def model_config_differences(saved: dict | None, current: dict | None) -> list[str]:
    """``"model.key: saved X, now Y"`` for every model option that differs (``RESUME_FREE_MODEL_KEYS`` aside)."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return []
    a, b = flatten({"model": saved.get("model") or {}}), flatten({"model": current.get("model") or {}})
    out = []
    for k in sorted(set(a) | set(b)):
        if k.startswith(RESUME_FREE_MODEL_KEYS) or a.get(k, "<absent>") == b.get(k, "<absent>"):
            continue
        out.append(f"{k}: saved {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}")
    return out


def restore_model(model: torch.nn.Module, ckpt: dict, path: str | Path, current_config: dict | None) -> None:
    """Load a training checkpoint's weights into ``model`` exactly, or fail naming why.

    A model config that differs from the one the checkpoint was saved with fails first, naming the
    differing keys (a size mismatch deep inside ``load_state_dict`` would not say which option changed).
    """
    diffs = model_config_differences(ckpt.get("config"), current_config)
    if diffs:
        raise WsovvisError(f"{path}: the run was saved with another model config; resuming needs the same one. "
                           f"Differing keys: {'; '.join(diffs[:10])}" + (f" (+{len(diffs) - 10} more)" if
                                                                         len(diffs) > 10 else ""))
    sd = ckpt.get("model")
    if not isinstance(sd, dict):
        raise WsovvisError(f"{path}: not a wsovvis training checkpoint (no 'model' state dict)")
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in sd and isinstance(sd[k], torch.Tensor) and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{len(x)} {n} (e.g. {', '.join(x[:4])})" for n, x in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if x]
        raise WsovvisError(f"{path}: checkpoint does not fit the model: {'; '.join(parts)}")
    model.load_state_dict(sd)


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

