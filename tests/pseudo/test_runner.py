"""``wsovvis pseudo`` end to end on tiny data: outputs, quality on synthetic video, resume after
SIGKILL, sharding, bad inputs, 0-instance videos and CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import run_module
from wsovvis.data.masks import read_ids
from wsovvis.pseudo import cli as pseudo_cli
from wsovvis.pseudo.runner import read_manifests, shard

REPO = Path(__file__).resolve().parents[2]


def _pseudo(*argv) -> int:
    return run_module(pseudo_cli, [*map(str, argv), "--no_progress"], "wsovvis pseudo")


def _ids(out: Path, video: str) -> np.ndarray:
    files = sorted((out / "masks" / video).glob("mask_*.png"))
    return np.stack([read_ids(f) for f in files])


def _video_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 0.0


@pytest.fixture(scope="module")
def synth_run(synthetic_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pseudo") / "out"
    rc = _pseudo("--img_root", synthetic_data.img_root, "--out", out)
    return synthetic_data, out, rc


def _hits(ds, out: Path) -> tuple[int, int]:
    """(synthetic objects whose best tube has video IoU >= 0.5, objects)."""
    hits, total = 0, 0
    for v in ds.video_names:
        pred = _ids(out, v)
        gt = np.stack([read_ids(ds.mask_root / v / f"{t:05d}.png") for t in range(ds.num_frames)])
        for g in np.unique(gt[gt > 0]):
            total += 1
            best = max([_video_iou(gt == g, pred == k) for k in np.unique(pred) if k] + [0.0])
            hits += best >= 0.5
    return hits, total


def test_cli_writes_one_png_per_frame_and_finds_the_synthetic_objects(synth_run, tmp_path):
    ds, out, rc = synth_run
    assert rc == 0
    manifest = read_manifests(out)
    assert sorted(manifest) == ds.video_names
    for v in ds.video_names:
        e = manifest[v]
        assert e["status"] == "done" and e["num_frames"] == ds.num_frames and e["size"] == [ds.height, ds.width]
        pred = _ids(out, v)
        assert pred.shape == (ds.num_frames, ds.height, ds.width)
        assert sorted(t["id"] for t in e["tubes"]) == sorted(int(k) for k in np.unique(pred) if k)
        assert all(0.0 <= t["score"] <= 1.0 for t in e["tubes"])
    # The default cut (tau 0.4, chosen on the single-object DAVIS sample) joins touching shapes of
    # these crowded synthetic videos: measured 3 of 11 objects found when it became the default.
    # --tau 0.5, the README's setting for scenes with several touching objects, keeps them apart
    # (measured 6 of 11).
    hits, total = _hits(ds, out)
    assert hits >= 0.25 * total, f"only {hits}/{total} synthetic objects found with video IoU >= 0.5"
    apart = tmp_path / "tau05"
    assert _pseudo("--img_root", ds.img_root, "--out", apart, "--tau", "0.5") == 0
    hits05, _ = _hits(ds, apart)
    assert hits05 >= 0.5 * total and hits05 > hits, f"--tau 0.5: {hits05}/{total} found (default: {hits})"


def test_finished_videos_are_skipped(synth_run, capsys):
    ds, out, _ = synth_run
    before = {p: p.stat().st_mtime_ns for p in (out / "masks").rglob("*.png")}
    assert _pseudo("--img_root", ds.img_root, "--out", out) == 0
    assert f"0 done, {len(ds.video_names)} skipped" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in (out / "masks").rglob("*.png")}


def test_sigkill_then_resume_gives_the_same_pngs_as_one_clean_run(synth_run, tmp_path):
    ds, clean, _ = synth_run
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "wsovvis", "pseudo", "--img_root", str(ds.img_root), "--out",
                             str(out), "--no_progress"], env=env, cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest" / "shard_000_of_001.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not manifest.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [v for v, e in read_manifests(out).items() if e["status"] == "done"]
    assert 1 <= len(done) < len(ds.video_names), "the kill must land between the first and the last video"
    # A half-written video: garbage PNGs for an unfinished video must be redone, not trusted.
    todo = next(v for v in ds.video_names if v not in done)
    (out / "masks" / todo).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((ds.height, ds.width), 7, np.uint8)).save(out / "masks" / todo / "mask_00000.png")
    assert _pseudo("--img_root", ds.img_root, "--out", out) == 0
    for v in ds.video_names:
        np.testing.assert_array_equal(_ids(out, v), _ids(clean, v), err_msg=v)
    assert read_manifests(out)[todo]["status"] == "done"


def test_shards_cover_every_video_exactly_once(synthetic_data, tmp_path):
    names = [f"v{i:02d}" for i in range(11)]
    parts = [shard(names, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == names and all(parts)
    # Sub-sharding by --workers: shard i of n with k workers = shards i + r n of n k.
    assert sorted(shard(names, 1, 2)) == sorted(shard(names, 1, 4) + shard(names, 3, 4))
    # Through the CLI: two worker processes, each writes its own manifest; the union is every video once.
    out = tmp_path / "out"
    assert _pseudo("--img_root", synthetic_data.img_root, "--out", out, "--workers", 2) == 0
    seen = []
    for p in sorted((out / "manifest").glob("*.jsonl")):
        seen += [json.loads(line)["video"] for line in p.read_text().splitlines()]
    assert sorted(seen) == synthetic_data.video_names
    assert len(list((out / "manifest").glob("*.jsonl"))) == 2 and list((out / "logs").glob("*.log"))


def test_bad_inputs_are_reported_per_video_and_the_run_goes_on(synthetic_data, tmp_path, capsys):
    root = tmp_path / "JPEGImages"
    good = synthetic_data.video_names[0]
    shutil.copytree(synthetic_data.img_root / good, root / good)
    (root / "empty_video").mkdir()
    (root / "corrupt_frame").mkdir()
    for t in range(3):
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(root / "corrupt_frame" / f"{t:05d}.jpg")
    (root / "corrupt_frame" / "00001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "mixed_sizes").mkdir()
    for t, (h, w) in enumerate([(40, 60), (40, 60), (50, 60)]):
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(root / "mixed_sizes" / f"{t:05d}.jpg")
    out = tmp_path / "out"
    assert _pseudo("--img_root", root, "--out", out) == 1  # some videos failed
    printed = capsys.readouterr().out
    assert "1 done" in printed and "3 failed" in printed
    m = read_manifests(out)
    assert m[good]["status"] == "done"
    assert m["empty_video"]["status"] == "failed" and "empty video folder" in m["empty_video"]["error"]
    assert "corrupt_frame/00001.jpg: unreadable frame" in m["corrupt_frame"]["error"]
    assert "mixed_sizes/00002.jpg: frame size 60x50 differs" in m["mixed_sizes"]["error"]
    assert all("Traceback" in m[v]["traceback"] for v in ("empty_video", "corrupt_frame", "mixed_sizes"))
    for v in ("empty_video", "corrupt_frame", "mixed_sizes"):
        assert not list((out / "masks" / v).glob("*.png"))


def test_a_video_without_objects_gets_all_zero_pngs(tmp_path):
    root = tmp_path / "JPEGImages" / "blank"
    root.mkdir(parents=True)
    for t in range(4):
        Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(root / f"{t:05d}.jpg")
    out = tmp_path / "out"
    assert _pseudo("--img_root", tmp_path / "JPEGImages", "--out", out) == 0
    e = read_manifests(out)["blank"]
    assert e["status"] == "done" and e["tubes"] == []
    ids = _ids(out, "blank")
    assert ids.shape == (4, 48, 64) and not ids.any()


def test_cli_errors_name_what_is_wrong(tmp_path, capsys):
    assert _pseudo("--img_root", tmp_path / "nope", "--out", tmp_path / "o") == 2
    assert "--img_root is not a folder" in capsys.readouterr().err
    (tmp_path / "imgs" / "v").mkdir(parents=True)
    assert _pseudo("--img_root", tmp_path / "imgs", "--out", tmp_path / "o", "--arch", "dino_vitb8") == 2
    err = capsys.readouterr().err
    assert "--weights is required for the dino_vitb8 features" in err and "nothing is downloaded" in err
    assert _pseudo("--img_root", tmp_path / "imgs", "--out", tmp_path / "o", "--engine", "videocutler",
                   "--cutler_root", tmp_path / "CutLER") == 2
    err = capsys.readouterr().err
    assert "videocutler engine cannot start" in err and "detectron2" in err and "--weights" in err
    assert _pseudo("--img_root", tmp_path / "imgs", "--out", tmp_path / "o", "--shard_index", 3,
                   "--num_shards", 2) == 2
    assert "--shard_index must be in 0..1" in capsys.readouterr().err
