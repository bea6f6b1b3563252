"""One intra-op thread for the modeling tests.

The 2 cores are shared with other test processes; with two torch threads each, small ops spend most
of their time waiting for the second core (a 10 s run took 150 s under contention).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
