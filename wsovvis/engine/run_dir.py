"""The run directory: created once by global rank 0, resumed in place, with its provenance.

A run directory holds Sacred's files (``config.json``, ``run.json``, ``metrics.json``, ``cout.txt``)
and ours: ``config.yaml`` (the resolved, validated config), ``provenance.json`` (one entry per
invocation: git SHA and dirty flag, command line, Hydra overrides, host, time), ``git.diff`` (the
uncommitted tracked changes when the tree is dirty), ``metrics.jsonl``,
``checkpoints/``, ``inference/``, ``plots/`` and, after a failure, ``traceback.txt``.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from sacred.observers import FileStorageObserver

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, atomic_write_text, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


class RunDirObserver(FileStorageObserver):
    """Sacred's file observer, able to continue an existing run directory (``resume``).

    New runs get ``<basedir>/<n>`` exactly like ``-F``. A resumed run reuses ``resume_dir``; the
    previous ``run.json``/``config.json`` are kept as ``run.<k>.json``/``config.<k>.json``, and
    ``metrics.json``/``cout.txt`` are appended to (Sacred's own behaviour for existing files).
    """

    def __init__(self, basedir: str | os.PathLike, resume_dir: str | os.PathLike | None = None) -> None:
        super().__init__(basedir)
        self.resume_dir = Path(resume_dir) if resume_dir else None

    def _make_run_dir(self, _id):
        if self.resume_dir is None:
            return super()._make_run_dir(_id)
        self.resume_dir.mkdir(parents=True, exist_ok=True)
        k = 1
        while (self.resume_dir / f"run.{k}.json").exists():
            k += 1
        for name in ("run", "config"):
            src = self.resume_dir / f"{name}.json"
            if src.exists():
                os.replace(src, self.resume_dir / f"{name}.{k}.json")
        self.dir = str(self.resume_dir)


def make_run_dir(basedir: str | os.PathLike) -> Path:
    """``<basedir>/<n>`` with the next free number, created atomically (no observer case)."""
    base = Path(basedir)
    base.mkdir(parents=True, exist_ok=True)
    n = max([int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] or [0]) + 1
    while True:
        try:
            (base / str(n)).mkdir()
            return base / str(n)
        except FileExistsError:
            n += 1


def find_resume_dir(basedir: str | os.PathLike, resume: bool | str) -> Path:
    """The run directory to resume: ``resume`` itself when it is a path, else the run under
    ``basedir`` whose newest checkpoint is the most recent."""
    from wsovvis.engine.checkpoint import Checkpointer

    if isinstance(resume, str) and resume not in ("", "auto"):
        p = Path(resume)
        if p.is_file() and p.parent.name == "checkpoints":
            p = p.parent.parent
        if not p.is_dir():
            raise WsovvisError(f"{resume}: resume= names no run directory")
        if Checkpointer(p / "checkpoints").latest() is None:
            raise WsovvisError(f"{p}: resume= names a run directory without checkpoints in {p / 'checkpoints'}")
        return p
    base = Path(basedir)
    candidates = []
    if base.is_dir():
        for run in base.iterdir():
            latest = Checkpointer(run / "checkpoints").latest() if run.is_dir() else None
            if latest is not None:
                candidates.append((latest.stat().st_mtime, run))
    if not candidates:
        raise WsovvisError(f"{base}: resume=True but no run directory under it has a checkpoint "
                           "(pass resume=<run dir> or the -F directory of the run)")
    return max(candidates)[1]


def git_info(repo: Path = REPO_ROOT) -> dict:
    """``{"sha", "dirty", "branch"}`` of the checkout (None values outside a git work tree)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": bool(status) if status is not None else None,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD") if sha else None}


def git_diff(repo: Path = REPO_ROOT, limit: int = 5 * 2**20) -> str | None:
    """``git diff HEAD`` of tracked files (None when unavailable or larger than ``limit`` bytes)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "diff", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or len(out.stdout) > limit:
        return None
    return out.stdout


def save_provenance(run_dir: Path, config: dict, argv: list[str], hydra_overrides: list[str],
                    world_size: int, extra: dict | None = None) -> None:
    """Write ``config.yaml`` and append this invocation to ``provenance.json``."""
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    git = git_info()
    if git.get("dirty"):
        # The SHA alone does not reproduce a dirty tree: keep the tracked changes beside it.
        diff = git_diff()
        if diff is not None:
            atomic_write_text(run_dir / "git.diff", diff)
            git["diff"] = "git.diff"
    path = run_dir / "provenance.json"
    history = read_json(path, "provenance file") if path.is_file() else []
    history.append({
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git,
        "command": [sys.executable, *sys.argv[:1], *argv],
        "argv": list(argv),
        "cwd": os.getcwd(),
        "hydra_overrides": list(hydra_overrides),
        "host": socket.gethostname(),
        "world_size": world_size,
        **(extra or {}),
    })
    atomic_write_json(path, history, indent=2)
