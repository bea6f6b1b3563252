"""Interrupting `convert --workers 2` and `pseudo --workers 2` at random points (issue #11 item 3).

Each command is started 20 times on tiny inputs and interrupted after a random delay within the time
of one clean run, in turn by Ctrl-C (SIGINT to the whole process group, as a terminal sends it),
SIGTERM to the parent and SIGKILL of the parent. Every time the command must end within a bound, no
process of its group may outlive it (workers die with their parent), and the outputs must be whole:
convert's skip report only beside the JSON it describes, pseudo's mask folders complete. A final run
then completes and gives the same outputs as one clean run, with no temp files left.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsovvis.data.masks import read_ids
from wsovvis.data.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[2]
TRIES = 20
EXIT_BOUND_S = 20.0  # a stopped command must be gone by then (the pools' own bound is 5 s)
SIGNALS = ("int_group", "term_parent", "kill_parent")

pytestmark = pytest.mark.slow


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wsovvis", *argv], env=_env(), cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _interrupt(proc: subprocess.Popen, how: str) -> None:
    if how == "int_group":
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "term_parent":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGKILL)


def _group_size(pgid: int) -> int:
    """Processes in process group ``pgid`` (from /proc)."""
    n = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        n += fields[0] != "Z" and int(fields[2]) == pgid
    return n


def _run_interrupted(argv: list[str], delay: float, how: str) -> tuple[int, str, bool, int]:
    """Start, wait until its workers run, then ``delay`` more seconds, and interrupt.

    -> (exit code, stderr, whether the signal reached a running command, its pid).
    """
    proc = _start(argv)
    deadline = time.monotonic() + 60
    while proc.poll() is None and _group_size(proc.pid) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # parent + 2 workers
    time.sleep(delay)
    landed = proc.poll() is None
    if landed:
        _interrupt(proc, how)
    try:
        _, err = proc.communicate(timeout=EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{argv[0]} did not stop within {EXIT_BOUND_S} s of {how} after {delay:.2f} s") from None
    deadline = time.monotonic() + EXIT_BOUND_S
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"worker processes of {argv[0]} outlived the parent ({how} after {delay:.2f} s)")
    return proc.returncode, err.decode(errors="replace"), landed, proc.pid


def _timed_clean_run(argv: list[str]) -> float:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "wsovvis", *argv], env=_env(), cwd=str(REPO), capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return time.monotonic() - t0


def _startup_time(command: str) -> float:
    """Seconds until the command's own code runs (interpreter start + imports, measured by ``--help``).

    Interrupts land after this: a signal while the interpreter itself starts is outside wsovvis's control.
    """
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "wsovvis", command, "--help"], env=_env(), cwd=str(REPO),
                   capture_output=True, timeout=120, check=True)
    return time.monotonic() - t0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("interrupt"), num_videos=6, num_frames=3, height=32, width=48,
                            seed=3, progress=False)


@pytest.fixture(scope="module")
def big_masks(tmp_path_factory) -> Path:
    """60 videos x 4 frames of 480x640 (the same bytes copied): about a second of pool work for convert."""
    root = tmp_path_factory.mktemp("convert_interrupt")
    ids = np.zeros((480, 640), np.uint8)
    ids[40:300, 60:400], ids[200:460, 300:620] = 1, 2
    buf = io.BytesIO()
    Image.fromarray(ids, mode="L").convert("P").save(buf, format="PNG")
    png = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), 90, np.uint8)).save(buf, format="JPEG")
    jpg = buf.getvalue()
    for v in range(60):
        for d in ("JPEGImages", "Annotations"):
            (root / d / f"v{v:03d}").mkdir(parents=True)
        for t in range(4):
            (root / "JPEGImages" / f"v{v:03d}" / f"{t:05d}.jpg").write_bytes(jpg)
            (root / "Annotations" / f"v{v:03d}" / f"{t:05d}.png").write_bytes(png)
    return root


def test_convert_workers_interrupted_20_times(big_masks, tmp_path):
    def argv(out: Path) -> list[str]:
        return ["convert", "--mask_root", str(big_masks / "Annotations"), "--img_root", str(big_masks / "JPEGImages"),
                "--out_json", str(out / "tubes.json"), "--workers", "2", "--no_progress"]

    ref = tmp_path / "ref"
    duration = _timed_clean_run(argv(ref))
    out = tmp_path / "out"
    start = _startup_time("convert")
    rng = random.Random(11)
    landed = 0
    for i in range(TRIES):
        how = SIGNALS[i % 3]
        code, err, hit, pid = _run_interrupted(argv(out), rng.uniform(0.0, max(0.0, duration - start)), how)
        landed += hit
        assert "Traceback" not in err, err[-2000:]
        report, js = out / "tubes.skipped.json", out / "tubes.json"
        if report.exists():  # the report is written last and names the JSON beside it
            assert js.exists() and json.loads(report.read_text())["out_json_sha256"] == _sha(js), (i, how)
        if how != "kill_parent" and code != 0:
            # -15 / -2: the signal came while Python was starting or shutting down, outside any handler
            assert code in (130, 143, -signal.SIGTERM, -signal.SIGINT), (i, how, code, err[-500:])
            assert not list(out.glob(f".*.{pid}.*.tmp")), "a stopped (not killed) run removes its temp files"
    assert landed >= TRIES // 2, f"only {landed} of {TRIES} interrupts reached a running command"
    assert _timed_clean_run(argv(out)) > 0
    assert (out / "tubes.json").read_bytes() == (ref / "tubes.json").read_bytes()
    assert not list(out.glob(".*.tmp")), "temp files of killed runs must be cleaned by the next run"


def _complete_videos(out: Path, data) -> None:
    """Every published mask folder holds all its frames and its tracks.json."""
    for d in (out / "masks").iterdir() if (out / "masks").is_dir() else []:
        if d.name.startswith("."):
            continue
        assert len(list(d.glob("mask_*.png"))) == data.num_frames and (d / "tracks.json").is_file(), d


def test_pseudo_workers_interrupted_20_times(data, tmp_path):
    def argv(out: Path) -> list[str]:
        return ["pseudo", "--img_root", str(data.img_root), "--out", str(out), "--workers", "2", "--no_progress",
                "--short_side", "32"]

    ref = tmp_path / "ref"
    duration = _timed_clean_run(argv(ref))
    out = tmp_path / "out"
    start = _startup_time("pseudo")
    rng = random.Random(12)
    landed = 0
    for i in range(TRIES):
        how = SIGNALS[i % 3]
        # workers spend their first seconds importing; later points are the same kind of moment
        code, err, hit, _ = _run_interrupted(argv(out), rng.uniform(0.0, min(3.0, max(0.0, duration - start))), how)
        landed += hit
        assert "Traceback" not in err, err[-2000:]
        if how != "kill_parent" and code != 0:
            assert code in (1, 3, 130, 143, -signal.SIGTERM, -signal.SIGINT), (i, how, code, err[-500:])
        _complete_videos(out, data)
    assert landed >= TRIES // 2, f"only {landed} of {TRIES} interrupts reached a running command"
    assert _timed_clean_run(argv(out)) > 0
    for d in sorted((ref / "masks").iterdir()):
        if d.name.startswith("."):
            continue
        assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in (out / "masks" / d.name).iterdir())
        for png in sorted(d.glob("*.png")):
            np.testing.assert_array_equal(read_ids(out / "masks" / d.name / png.name), read_ids(png), err_msg=str(png))
    assert not [p for p in (out / "masks").iterdir() if p.name.startswith(".")], "staging folders left behind"
    assert not list((out / "manifest").glob(".*.tmp"))
