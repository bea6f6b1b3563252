"""Outputs appear whole, stale temp files go, resumable jobs refuse other parameters (issue #11 items 2, 4, 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wsovvis.cli import main as cli_main
from wsovvis.data import convert as convert_mod
from wsovvis.data.synthetic import generate_dataset
from wsovvis.utils.io import atomic_write_text, clean_stale_tmp


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("outputs"), num_videos=2, num_frames=2, height=32, width=48,
                            seed=7, progress=False)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_tmp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / f".out.json.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".out.json.{os.getppid()}.def456.tmp"  # our parent is alive
    mine = tmp_path / f".out.json.{os.getpid()}.ghi789.tmp"  # this process may be writing it right now
    other = tmp_path / f".other.json.{_dead_pid()}.jkl000.tmp"
    user = tmp_path / ".notes.tmp"  # not ours: no pid in the name
    for p in (dead, live, mine, other, user):
        p.write_text("x")
    assert clean_stale_tmp(tmp_path, "out.json") == [dead]
    assert live.exists() and mine.exists() and other.exists()
    assert sorted(clean_stale_tmp(tmp_path)) == [other] and user.exists()
    atomic_write_text(tmp_path / "out.json", "ok")
    left = sorted(p.name.split(".")[3] for p in tmp_path.glob(".out.json.*.tmp"))
    assert left == sorted([str(os.getppid()), str(os.getpid())])


def test_convert_never_leaves_a_report_beside_another_json(small, tmp_path, monkeypatch):
    out = tmp_path / "tubes.json"
    report_path = tmp_path / "tubes.skipped.json"
    args = ["convert", "--mask_root", str(small.mask_root), "--img_root", str(small.img_root), "--out_json",
            str(out), "--min_masks", "1", "--no_progress"]
    assert cli_main(args) == 0
    import hashlib

    report = json.loads(report_path.read_text())
    assert report["out_json_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    old_json = out.read_bytes()
    # a killed earlier run left a temp file of the JSON
    stale = tmp_path / f".tubes.json.{_dead_pid()}.zzz.tmp"
    stale.write_text("{")

    def killed(*a, **k):
        raise KeyboardInterrupt  # interrupted while the JSON is being written

    monkeypatch.setattr(convert_mod.ytvis, "write", killed)
    assert cli_main(args) == 130
    assert not report_path.exists(), "the old report must not stay beside a JSON it does not describe"
    assert out.read_bytes() == old_json and not stale.exists()
    monkeypatch.undo()
    assert cli_main(args) == 0 and report_path.exists()


def test_pseudo_resume_with_other_parameters_is_refused_unless_overwrite(small, tmp_path, capsys):
    out = tmp_path / "pseudo"
    base = ["pseudo", "--img_root", str(small.img_root), "--out", str(out), "--no_progress", "--short_side", "32",
            "--min_len", "1"]
    assert cli_main(base) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["short_side"] == 32 and params["img_root"] == str(small.img_root.resolve())
    capsys.readouterr()
    assert cli_main(base) == 0  # same parameters: resumes (everything already finished)
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert cli_main([*base, "--tau", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "other parameters" in err and "tau: recorded None, now 0.3" in err and "--overwrite" in err
    assert cli_main([*base, "--tau", "0.3", "--overwrite"]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    assert json.loads((out / "params.json").read_text())["tau"] == 0.3
    assert not [p for p in (out / "masks").iterdir() if p.name.startswith(".")]


def test_pseudo_resume_after_the_code_defaults_moved_is_refused(small, tmp_path, capsys, monkeypatch):
    from wsovvis.pseudo import engines

    out = tmp_path / "pseudo"
    base = ["pseudo", "--img_root", str(small.img_root), "--out", str(out), "--no_progress", "--short_side", "32",
            "--min_len", "1"]
    assert cli_main(base) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["default.classic_cut.tau"] == engines.CLASSIC_CUT["tau"]
    assert params["default.classic_features.coherence_px"] > 0
    # An upgrade that moves a default no flag names: the old tubes are not "already finished".
    monkeypatch.setitem(engines.CLASSIC_CUT, "tau", 0.55)
    capsys.readouterr()
    assert cli_main(base) == 2
    err = capsys.readouterr().err
    assert f"default.classic_cut.tau: recorded {params['default.classic_cut.tau']!r}, now 0.55" in err
    # Other engines do not use them, so an upgrade of the built-in one does not block their resumes.
    import argparse

    from wsovvis.pseudo import cli as pseudo_cli

    p = argparse.ArgumentParser()
    pseudo_cli.add_arguments(p)
    other = pseudo_cli.provenance_params(p.parse_args(["--img_root", "x", "--out", "y", "--engine", "videocutler"]))
    assert other["engine"] == "videocutler" and not any(k.startswith("default.") for k in other)


@pytest.mark.parametrize("command", [
    ["synth", "--out", "{blocker}/s", "--num_videos", "1", "--num_frames", "1", "--no_progress"],
    ["check", "{gt}", "--report", "{blocker}/r.json", "--no_progress"],
    ["eval", "--gt", "{gt}", "--results", "{gt}", "--out", "{blocker}/e.json"],
    ["visualize", "{gt}", "--img_root", "{img}", "--out", "{blocker}/v"],
    ["pseudo", "--img_root", "{img}", "--out", "{blocker}/p", "--no_progress"],
    ["demo", "--out", "{blocker}/d"],
])
def test_outputs_under_a_file_are_messages(small, tmp_path, capsys, command):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    argv = [a.format(blocker=blocker, gt=small.gt_json, img=small.img_root) for a in command]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "\nerror: " in "\n" + err and str(blocker) in err, err[-800:]


def test_training_with_an_unusable_runs_folder_is_a_message(small, tmp_path):
    from pathlib import Path

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    script = Path(__file__).resolve().parents[2] / "train_seqformer_pseudo.py"
    data = [f"data.train_json={small.gt_json}", f"data.train_img_root={small.img_root}",
            f"data.val_json={small.gt_json}", f"data.val_img_root={small.img_root}"]
    r = subprocess.run([sys.executable, str(script), "debug=cpu_smoke", "with", *data, "num_threads=1",
                        "progress=False", "-F", str(blocker / "runs"), "-c", "no"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=240, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"error: {blocker / 'runs'}: cannot create the runs folder" in r.stderr and "Traceback" not in r.stderr
