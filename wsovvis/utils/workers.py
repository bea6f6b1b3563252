"""Worker processes that stop when asked and never outlive their parent.

* `worker_init` (a pool initializer, or called first thing in a child process): the worker ignores
  SIGINT (Ctrl-C goes to the whole process group; only the parent decides what to do) and asks Linux
  to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so a killed parent leaves no
  workers behind.
* `child_preexec`: the same for ``subprocess.Popen(preexec_fn=...)`` children.
* `sigterm_raises`: while active, SIGTERM in the parent raises `Terminated` (a ``KeyboardInterrupt``),
  so the same cleanup paths as Ctrl-C run.
* `interruptible_pool`: a ``multiprocessing`` pool whose workers are stopped promptly on any exception
  (``terminate`` bounded in time, then SIGKILL) instead of being waited for.
* `stop_processes`: bounded stop of ``Popen`` children (SIGTERM, wait, SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.pool import Pool

from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 5.0


class Terminated(KeyboardInterrupt):
    """SIGTERM received (raised by `sigterm_raises`); the CLI exits 143."""


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: workers may outlive a killed parent, nothing else changes
        return


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def worker_init(parent_pid: int | None = None) -> None:
    """Pool initializer: ignore SIGINT, default SIGTERM, die with the parent.

    The pool is forked with both signals blocked (`interruptible_pool`), so a Ctrl-C during the fork
    cannot interrupt the child's start-up; they are unblocked here, once the handlers are set.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    die_with_parent()
    # the parent may have died between fork and prctl: then the signal never comes
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def child_preexec(parent_pid: int) -> None:
    """``preexec_fn`` of a ``Popen`` child: dies with the parent (it keeps SIGINT: it is a full command)."""
    die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(1)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread while active (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child inherited this handler: die as SIGTERM does by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _terminate_pool(pool: Pool, timeout: float, others: set) -> None:
    """``pool.terminate()`` in a thread, bounded; then SIGKILL any child (not in ``others``) still alive."""
    t = threading.Thread(target=pool.terminate, daemon=True, name="pool-terminate")
    t.start()
    t.join(timeout)
    deadline = time.monotonic() + timeout
    for child in mp.active_children():
        if child.pid in others:
            continue
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            log.warning("worker %d did not stop within %.0f s: killed", child.pid, timeout)
            child.kill()
            child.join(1.0)


@contextlib.contextmanager
def interruptible_pool(workers: int, timeout: float = STOP_TIMEOUT_S) -> Iterator[Pool]:
    """A ``multiprocessing.Pool`` of ``workers`` initialised with `worker_init`.

    On normal exit the pool is closed and joined; on any exception (Ctrl-C, SIGTERM via `sigterm_raises`,
    an error) its workers are terminated within ``timeout`` seconds (then killed) and the exception goes on.
    """
    others = {c.pid for c in mp.active_children()}
    main = threading.current_thread() is threading.main_thread()
    # Ctrl-C / SIGTERM wait while the workers are forked (they would break a child's start-up) and
    # are delivered inside the try below, where the cleanup handles them
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if main else None
    pool = None
    ok = False
    try:
        pool = mp.Pool(workers, initializer=worker_init, initargs=(os.getpid(),))
        with sigterm_raises():
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            yield pool
            ok = True
    finally:
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if pool is not None and ok:
            pool.close()
            pool.join()
        elif pool is not None:
            _terminate_pool(pool, timeout, others)


def stop_processes(procs: list[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every running child, wait up to ``timeout`` seconds in all, then SIGKILL the rest."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop within %.0f s: killed", p.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
