"""Inference tests run torch on 1 CPU thread: tiny convolutions gain nothing from a second thread,
and on a shared 2-core machine two threads were measured 10x slower (OpenMP waits)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
