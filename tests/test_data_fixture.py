"""Data tests skip without a data root, and fail under QUINTET_REQUIRE_DATA=1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _pytest_in(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_needs_data.py").write_text("def test_it(data_dir):\n    assert data_dir.is_dir()\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUINTET_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, env={**clean, **env}, cwd=tmp_path,
    )


def test_skips_with_reason_without_data(tmp_path):
    result = _pytest_in(tmp_path, QUINTET_DATA=str(tmp_path / "absent"))
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "no data root" in result.stdout


def test_fails_when_data_is_required(tmp_path):
    result = _pytest_in(tmp_path, QUINTET_REQUIRE_DATA="1", QUINTET_DATA=str(tmp_path / "absent"))
    assert result.returncode == 1
    assert "1 error" in result.stdout and "QUINTET_REQUIRE_DATA=1 demands the real data" in result.stdout
