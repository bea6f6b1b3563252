"""The run directory: created once by global rank 0, resumed in place, with its provenance.

A run directory holds Sacred's files (``config.json``, ``run.json``, ``metrics.json``, ``cout.txt``)
and ours: ``config.yaml`` (the resolved, validated config; every key with a comment naming where its
value came from, `config_yaml_text`), ``provenance.json`` (git SHA and dirty flag, command line,
Hydra overrides, host, time), ``git.diff`` (the uncommitted tracked changes when the tree is dirty),
``metrics.jsonl``, ``checkpoints/``, ``inference/``, ``plots/`` and, after a failure, ``traceback.txt``.

Files of an invocation are never overwritten by a later one: invocation ``k >= 2`` of the same run
directory (``resume``, ``eval_only``) writes its own record in ``invocations/<k>/`` (Sacred's files,
``config.yaml``, ``provenance.json``, and for eval-only runs ``inference/``). A resumed training run
continues the run's own ``checkpoints/`` and ``metrics.jsonl``, which is what resuming means.
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
from wsovvis.utils.io import atomic_write_json, atomic_write_text
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def next_invocation_dir(run_dir: str | os.PathLike) -> Path:
    """``<run_dir>/invocations/<k>`` for the next record (k starts at 2: the run's first invocation is
    the run directory itself), created atomically."""
    base = Path(run_dir) / "invocations"
    base.mkdir(parents=True, exist_ok=True)
    k = max([int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] or [1]) + 1
    while True:
        try:
            (base / str(k)).mkdir()
            return base / str(k)
        except FileExistsError:
            k += 1


class RunDirObserver(FileStorageObserver):
    """Sacred's file observer, able to continue an existing run directory (``resume``).

    New runs get ``<basedir>/<n>`` exactly like ``-F``. A resumed run (``resume_dir``) writes Sacred's
    files into the next ``<resume_dir>/invocations/<k>``, so the earlier invocations' are kept as they were.
    """

    def __init__(self, basedir: str | os.PathLike, resume_dir: str | os.PathLike | None = None) -> None:
        super().__init__(basedir)
        self.resume_dir = Path(resume_dir) if resume_dir else None

    def _make_run_dir(self, _id):
        if self.resume_dir is None:
            return super()._make_run_dir(_id)
        self.dir = str(next_invocation_dir(self.resume_dir))


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


def _yaml_leaf(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text[:-3].strip() if text.endswith("...") else text


def config_yaml_text(config: dict, sources: dict[str, str] | None = None) -> str:
    """``config`` as YAML, one leaf per line with ``# <source>`` when ``sources`` names it.

    Loading the text with ``yaml.safe_load`` gives ``config`` back exactly (checked here)."""
    sources = sources or {}
    lines: list[str] = []

    def emit(node: dict, prefix: str, indent: int) -> None:
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            name = _yaml_leaf(k)
            if isinstance(v, dict) and v:
                lines.append(" " * indent + f"{name}:")
                emit(v, key, indent + 2)
            else:
                src = sources.get(key)
                lines.append(" " * indent + f"{name}: {_yaml_leaf(v)}" + (f"  # {src}" if src else ""))

    emit(config, "", 0)
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != config:  # a value the line writer cannot express: plain YAML instead
        text = yaml.safe_dump(config, sort_keys=False)
    return text


def save_provenance(run_dir: Path, config: dict, argv: list[str], hydra_overrides: list[str],
                    world_size: int, extra: dict | None = None, sources: dict[str, str] | None = None,
                    record_dir: Path | None = None) -> None:
    """Write ``config.yaml`` (with sources) and ``provenance.json`` into ``record_dir`` (the run
    directory for its first invocation, ``invocations/<k>`` after that)."""
    record_dir = Path(record_dir or run_dir)
    atomic_write_text(record_dir / "config.yaml", config_yaml_text(config, sources))
    git = git_info()
    if git.get("dirty"):
        # The SHA alone does not reproduce a dirty tree: keep the tracked changes beside it.
        diff = git_diff()
        if diff is not None:
            atomic_write_text(record_dir / "git.diff", diff)
            git["diff"] = "git.diff"
    atomic_write_json(record_dir / "provenance.json", [{
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git,
        "command": [sys.executable, *sys.argv[:1], *argv],
        "argv": list(argv),
        "cwd": os.getcwd(),
        "hydra_overrides": list(hydra_overrides),
        "host": socket.gethostname(),
        "world_size": world_size,
        "run_dir": str(run_dir),
        **(extra or {}),
    }], indent=2)
