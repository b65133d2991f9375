"""Helpers for the logic tests: the difflogic oracle when it is installed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def difflogic():
    """difflogic 0.1.0's pure-Python path (installed by tools/install_difflogic.py), or a skip."""
    return pytest.importorskip("difflogic", reason="difflogic not installed (run tools/install_difflogic.py)")
