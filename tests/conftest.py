"""Shared by every test: torch runs on one thread.

The machines that run the suite have 2 cores shared with subprocesses (notebooks, Voila, Chromium);
torch's default threads spin against them (a digits epoch went from 0.2 s to 30 s). scripts/test.sh
also sets OMP_NUM_THREADS=1; this covers a plain ``pytest`` run.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
