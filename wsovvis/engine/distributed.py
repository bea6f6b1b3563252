"""Process groups, rank helpers and the failure watchdogs of multi-process training.

Two ways to get several processes:

* ``num_gpus=N`` from one command: the launching process becomes local rank 0 and spawns local
  ranks ``1..N-1`` (`spawn_local_ranks`); every process joins the group through ``dist_url``.
* ``torchrun``: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` come from the environment (`torchrun_env`).

Failure handling (spawn mode): each rank writes ``traceback.rank<r>.txt`` into the run directory
when it fails. Local rank 0 runs a `ChildWatchdog` that notices a dead child and, if rank 0 has not
stopped by itself within ``grace_s`` (a collective with a dead peer fails at once), writes
``traceback.txt`` and exits hard. Each child runs a `ParentWatchdog` that exits when its parent
disappears. With torchrun, the torchrun agent tears the group down when a rank fails.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from wsovvis.utils.io import atomic_write_text
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    init_method: str = "env://"
    backend: str = "gloo"
    timeout_s: float = 1800.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_env() -> DistInfo | None:
    """Ranks from torchrun's environment, or None when not launched by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return DistInfo(
        rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)), init_method="env://",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_group(info: DistInfo) -> None:
    if info.world_size <= 1 or dist.is_initialized():
        return
    kwargs: dict[str, Any] = {"backend": info.backend, "timeout": datetime.timedelta(seconds=info.timeout_s)}
    if info.init_method != "env://":
        kwargs.update(init_method=info.init_method, rank=info.rank, world_size=info.world_size)
    dist.init_process_group(**kwargs)


def destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as e:  # a peer may already be gone
            log.debug("destroy_process_group: %s", e)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if world_size() == 1:
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_true(flag: bool, device: torch.device) -> bool:
    """True on every rank iff ``flag`` is True on every rank (so that all ranks take the same branch)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return t.item() == 0.0


def reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of scalar dicts over ranks (same keys on every rank)."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


# --- failure reporting -------------------------------------------------------------------------

def write_rank_traceback(run_dir: str | Path | None, rank: int, text: str) -> None:
    """``traceback.rank<r>.txt``: first line ``time=<unix time>``, then the traceback."""
    if run_dir is None:
        return
    try:
        atomic_write_text(Path(run_dir) / f"traceback.rank{rank}.txt", f"time={time.time():.6f}\n{text}")
    except OSError as e:
        print(f"[wsovvis] rank {rank}: cannot write traceback into {run_dir}: {e}", file=sys.stderr)


def _read_rank_tracebacks(run_dir: Path) -> list[tuple[float, int, str]]:
    out = []
    for p in run_dir.glob("traceback.rank*.txt"):
        try:
            first, _, rest = p.read_text(encoding="utf-8").partition("\n")
            out.append((float(first.split("=", 1)[1]), int(p.name[len("traceback.rank"):-4]), rest))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)


def write_root_traceback(run_dir: str | Path | None, notes: list[str] | None = None,
                         root_rank: int | None = None) -> Path | None:
    """``traceback.txt``: the root cause first (``root_rank``, else the earliest rank failure), then the
    other ranks' last lines and ``notes``."""
    if run_dir is None:
        return None
    run_dir = Path(run_dir)
    found = _read_rank_tracebacks(run_dir)
    if root_rank is not None:
        found.sort(key=lambda f: (f[1] != root_rank, f[0]))
    lines = []
    if found:
        t0, r0, text0 = found[0]
        lines += [f"root failure: rank {r0} at {datetime.datetime.fromtimestamp(t0).isoformat()}", "", text0.rstrip()]
        for t, r, text in found[1:]:
            last = text.strip().splitlines()[-1] if text.strip() else ""
            lines += ["", f"rank {r} failed ({t - t0:+.1f} s): {last}"]
    for n in notes or []:
        lines += ["", n]
    if not lines:
        return None
    path = run_dir / "traceback.txt"
    try:
        atomic_write_text(path, "\n".join(lines) + "\n")
    except OSError:
        return None
    return path


def format_exception(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


class ChildWatchdog(threading.Thread):
    """Watches spawned ranks from local rank 0; ends the whole job when a child fails.

    ``failed`` holds ``(rank, exitcode)`` of the first failed child. Rank 0 normally notices by
    itself (its next collective fails at once on the broken connection) and calls `stop`; if it
    has not done so within ``grace_s`` (stuck outside any collective), the watchdog writes
    ``traceback.txt``, calls ``on_hard_exit``, kills the children and exits the process.
    """

    def __init__(self, procs: dict[int, Any], run_dir: Path | None, grace_s: float = 20.0,
                 on_hard_exit=None) -> None:
        super().__init__(daemon=True, name="wsovvis-child-watchdog")
        self.procs, self.run_dir, self.grace_s = procs, run_dir, grace_s
        self.failed: tuple[int, int] | None = None
        self.on_hard_exit = on_hard_exit
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(0.25):
            for rank, p in self.procs.items():
                if p.exitcode not in (None, 0):
                    self.failed = (rank, p.exitcode)
                    break
            if self.failed:
                break
        if not self.failed:
            return
        rank, code = self.failed
        log.error("rank %d exited with code %s; stopping every rank", rank, code)
        if self._stop_event.wait(self.grace_s):
            return
        # Rank 0 is stuck (not in a collective, or one that does not notice): end the job from here.
        if self.run_dir is not None and not (Path(self.run_dir) / f"traceback.rank{rank}.txt").exists():
            write_rank_traceback(self.run_dir, rank, f"rank {rank} exited with code {code} without a traceback\n")
        write_root_traceback(self.run_dir, [f"rank 0 did not stop within {self.grace_s:.0f} s of rank {rank}'s "
                                            "failure and was ended by the watchdog"], root_rank=rank)
        if self.on_hard_exit is not None:
            try:
                self.on_hard_exit(rank, code)
            except Exception:
                pass
        terminate(self.procs.values())
        print(f"[wsovvis] rank {rank} failed (exit code {code}); rank 0 stopped by the watchdog", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)


class ParentWatchdog(threading.Thread):
    """In a spawned rank: exit as soon as the launching process is gone."""

    def __init__(self, parent_pid: int) -> None:
        super().__init__(daemon=True, name="wsovvis-parent-watchdog")
        self.parent_pid = parent_pid

    def run(self) -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != self.parent_pid:
                os._exit(1)


def terminate(procs, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``timeout_s``."""
    procs = [p for p in procs if p.is_alive()]
    for p in procs:
        p.terminate()
    deadline = time.time() + timeout_s
    for p in procs:
        p.join(max(0.0, deadline - time.time()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(1.0)
