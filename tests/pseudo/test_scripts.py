"""The multi-worker shell entry points, run on CPU workers over synthetic videos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wsovvis.pseudo.runner import read_manifests

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not available")


def _env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(WSOVVIS_ROOT=str(root), PYTHON=sys.executable, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_full_script_writes_pngs_logs_and_the_json(synthetic_data, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(synthetic_data.img_root, root / "data/LV-VIS/val/JPEGImages")
    r = subprocess.run(["bash", str(SCRIPTS / "run_videocutler_4gpu.sh"), "val"],
                       env=_env(root, NUM_GPUS=2, ENGINE="maskcut"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = root / "outputs/videocutler_lvvis_png/val"
    assert "workers=2" in r.stdout and "all workers: 3 of 3 videos finished" in r.stdout
    assert all(json.loads((out / "masks" / v / "tracks.json").read_text())["tracks"] is not None
               for v in synthetic_data.video_names)
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["worker_0_of_2.log", "worker_1_of_2.log"]
    assert sorted(p.name for p in (out / "manifest").iterdir()) == ["shard_000_of_002.jsonl", "shard_001_of_002.jsonl"]
    for v in synthetic_data.video_names:
        assert len(list((out / "masks" / v).glob("mask_*.png"))) == synthetic_data.num_frames
    data = json.loads((out / "val_pseudo_tubes.json").read_text())
    assert sorted(v["name"] for v in data["videos"]) == synthetic_data.video_names
    tubes = sum(len(e["tubes"]) for e in read_manifests(out).values())
    assert len(data["annotations"]) == tubes > 0
    assert all(isinstance(a["score"], float) for a in data["annotations"])  # the tube scores travelled along
    # a second run resumes: nothing is redone, and the summary counts the finished videos as finished
    r = subprocess.run(["bash", str(SCRIPTS / "run_videocutler_4gpu.sh"), "val"],
                       env=_env(root, NUM_GPUS=2, ENGINE="maskcut"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "3 of 3 videos finished (in this run or an earlier one)" in r.stdout


@pytest.mark.parametrize("script", ["run_videocutler_4gpu.sh", "run_videocutler_4gpu_png_only.sh"])
def test_default_engine_is_videocutler_and_a_missing_setup_names_the_alternative(synthetic_data, tmp_path, script):
    img_root = tmp_path / "frames"
    shutil.copytree(synthetic_data.img_root, img_root)
    r = subprocess.run(["bash", str(SCRIPTS / script), "train"],
                       env=_env(tmp_path, NUM_GPUS=2, IMG_ROOT=img_root, OUT_ROOT=tmp_path / "o"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr  # stopped before any worker started
    assert "ENGINE=videocutler (the default) cannot start" in r.stderr
    assert "detectron2" in r.stderr and "weights: pass --weights" in r.stderr and "ENGINE=maskcut" in r.stderr
    assert not (tmp_path / "o").exists()


def test_scripts_reject_a_bad_split_and_a_missing_image_root(tmp_path):
    r = subprocess.run(["bash", str(SCRIPTS / "run_videocutler_4gpu.sh"), "test"], env=_env(tmp_path),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run(["bash", str(SCRIPTS / "run_videocutler_4gpu_png_only.sh"), "val"], env=_env(tmp_path),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "data/LV-VIS/val/JPEGImages not found" in r.stderr
