"""`wsovvis.utils.workers`: pools stop promptly on errors and signals; forked children keep default SIGTERM."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from wsovvis.utils.workers import Terminated, interruptible_pool, sigterm_raises


def _sleep(x: float) -> float:
    time.sleep(x)
    return x


def test_an_error_stops_busy_workers_within_the_bound():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="boom"):
        with interruptible_pool(2, timeout=2.0) as pool:
            it = pool.imap(_sleep, [0.0, 60.0, 60.0])
            next(it)
            raise RuntimeError("boom")
    assert time.monotonic() - t0 < 15, "busy workers were waited for instead of stopped"
    assert not mp.active_children()


def test_sigterm_raises_in_the_owner_and_a_forked_child_dies_by_default():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_raises():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs at the next bytecode
        pid = os.fork()
        if pid == 0:  # child: inherited the handler, but SIGTERM must still end it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # restored on exit


def test_pool_results_in_order_and_workers_gone_after_normal_exit():
    with interruptible_pool(2) as pool:
        assert list(pool.imap(_sleep, [0.0, 0.01, 0.0])) == [0.0, 0.01, 0.0]
    assert not mp.active_children()
