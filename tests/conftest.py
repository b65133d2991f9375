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
    """The data root holding the real data sets, or a skip (a failure under QUINTET_REQUIRE_DATA=1).

    The root is found as the library finds it: ``$QUINTET_DATA``, else ``../shared/data`` beside
    the clone, else ``~/.cache/quintet``."""
    from quintet.datasets.registry import DATASETS, data_root

    root = data_root()
    if any((root / folder).is_dir() for folder in DATASETS.values()):
        return root
    reason = f"no data root: {root} holds none of the data sets (set QUINTET_DATA or pass --data-dir)"
    if _require_data():
        pytest.fail(f"{reason}, but QUINTET_REQUIRE_DATA=1 demands the real data")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _data_root_unchanged():
    """``quintet --data-dir`` sets ``$QUINTET_DATA`` for the process it runs in; a command run
    in-process by a test must not move the data root of the tests that follow."""
    before = os.environ.get("QUINTET_DATA")
    yield
    if before is None:
        os.environ.pop("QUINTET_DATA", None)
    else:
        os.environ["QUINTET_DATA"] = before


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that hold slow tests run first (in their own order), so that with one xdist worker
    per core the long multi-process tests do not all land at the end of the run."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow") and item.module is not None}
    items.sort(key=lambda item: item.module is None or item.module.__name__ not in slow)
