"""Shared test fixtures: offline hub, real-data location, one synthetic sample set per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: fail fast instead of retrying for ~46 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _real_root() -> Path:
    env = os.environ.get("WSOVVIS_REAL_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` (or ``$WSOVVIS_REAL_DATA``); the test is skipped when it is absent."""
    root = _real_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set WSOVVIS_REAL_DATA to its location)")
    return root


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """Two xdist workers on two cores: one intra-op thread each avoids oversubscription."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
    yield


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A small seeded synthetic set (frames, GT id PNGs, GT JSON) shared by the session's tests."""
    from wsovvis.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth"), num_videos=3, num_frames=6, height=96, width=128, seed=0)
