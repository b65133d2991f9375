"""Shared fixtures. Data tests skip without a data root, and fail instead when
``QUINTET_REQUIRE_DATA=1`` (as CI sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
# The tests use small tensors on a 2-core machine: one torch thread avoids OpenMP hand-offs
# that cost more than they save.
torch.set_num_threads(1)


def _require_data() -> bool:
    return os.environ.get("QUINTET_REQUIRE_DATA", "") not in ("", "0")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data root with the real data sets, or a skip (a failure under QUINTET_REQUIRE_DATA=1)."""
    root = os.environ.get("QUINTET_DATA")
    if root and Path(root).is_dir() and any(Path(root).iterdir()):
        return Path(root)
    reason = f"no data root: QUINTET_DATA={root!r} is unset, missing or empty"
    if _require_data():
        pytest.fail(f"{reason}, but QUINTET_REQUIRE_DATA=1 demands the real data")
    pytest.skip(reason)
