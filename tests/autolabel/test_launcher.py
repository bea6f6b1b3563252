"""``--launcher slurm`` through submitit's own executors: ``local`` (real processes, one per array
task) for the pseudo job array, ``debug`` (in-process) for resuming and for ``wsovvis embed``."""

from __future__ import annotations

import json

import pytest

from tests.autolabel.scenes import video_frames, write_video
from wsovvis.cli import main as cli


def _videos(tmp_path, n=3):
    img = tmp_path / "img"
    for i in range(n):
        frames, _ = video_frames(num_frames=5 + i)
        write_video(img, f"vid{i}", frames)
    (tmp_path / "vocab.txt").write_text("red\nblue\ngreen\n")
    return img


def _pseudo(tmp_path, img, cluster, *extra):
    return ["pseudo", "--img_root", str(img), "--out", str(tmp_path / "out"), "--engine", "owlv2_sam2", "--vocab",
            str(tmp_path / "vocab.txt"), "--detector", "standin:colour", "--segmenter", "standin:colour",
            "--min_len", "1", "--no_progress", "--launcher", "slurm", "--slurm_cluster", cluster, "--slurm_wait",
            "--slurm_time", "5", *extra]


def _check_outputs(out, n=3):
    for i in range(n):
        assert len(list((out / "masks" / f"vid{i}").glob("mask_*.png"))) == 5 + i
        assert (out / "masks" / f"vid{i}" / "tracks.json").is_file()


@pytest.mark.slow  # two worker processes that import torch: ~25 s on a busy 2-core machine
def test_pseudo_job_array_local_processes(tmp_path, capsys):
    img = _videos(tmp_path)
    assert cli(_pseudo(tmp_path, img, "local", "--num_shards", "2")) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "manifest").glob("*.jsonl")) == ["shard_000_of_002.jsonl",
                                                                         "shard_001_of_002.jsonl"]
    _check_outputs(out)
    assert len(list((out / "slurm").glob("*_log.out"))) == 2  # submitit's per-task logs
    assert "3 video(s) done, 0 failed" in capsys.readouterr().out


def test_job_array_resumes_and_embed_job(tmp_path, capsys):
    img = _videos(tmp_path)
    out = tmp_path / "out"
    assert cli(_pseudo(tmp_path, img, "debug", "--num_shards", "3")) == 0
    _check_outputs(out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "masks").rglob("*.png")}
    capsys.readouterr()
    # re-submitting: every task finds its videos finished in the shared manifests and redoes nothing
    assert cli(_pseudo(tmp_path, img, "debug", "--num_shards", "3")) == 0
    assert "3 video(s) done, 0 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "masks").rglob("*.png")} == stamps
    assert cli(_pseudo(tmp_path, img, "debug", "--workers", "2")) == 2
    assert "raise --num_shards" in capsys.readouterr().err

    pseudo = tmp_path / "pseudo.json"
    assert cli(["convert", "--mask_root", str(out / "masks"), "--img_root", str(img), "--out_json", str(pseudo),
                "--min_masks", "1", "--no_progress"]) == 0
    emb = tmp_path / "emb"
    assert cli(["embed", "--tubes", str(pseudo), "--img_root", str(img), "--out", str(emb), "--model", "colorhist:",
                "--num_workers", "0", "--no_progress", "--launcher", "slurm", "--slurm_cluster", "debug",
                "--slurm_wait", "--slurm_time", "5"]) == 0
    index = (emb / "inst2feat.tsv").read_text().splitlines()
    assert len(index) - 1 == len(json.loads(pseudo.read_text())["annotations"]) == 6
