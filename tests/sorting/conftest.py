"""One torch thread for the sorting tests: small ops on a shared 2-core machine are faster
without OpenMP hand-offs."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
