"""Helpers for running the real training entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "train_seqformer_pseudo.py"


def train_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def data_args(d, val: bool = True) -> list[str]:
    args = [f"data.train_json={d.gt_json}", f"data.train_img_root={d.img_root}"]
    if val:
        args += [f"data.val_json={d.gt_json}", f"data.val_img_root={d.img_root}"]
    return args


def run_train(argv: list[str], cwd: Path, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    """``python train_seqformer_pseudo.py ARGV`` (1 thread, progress bars off, captured output)."""
    return subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=cwd, env=train_env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def popen_train(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *argv], cwd=cwd, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def train_data(synthetic_data):
    return synthetic_data
