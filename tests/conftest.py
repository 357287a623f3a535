"""Test-wide settings: one torch thread (the CI machine has 2 shared cores, where two threads
contending with other work made small steps ~100x slower) and a private artifact cache."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
