"""The data root, the known files under it and their recorded sha256 sums.

The root is ``--data-dir`` (the CLI sets ``$QUINTET_DATA``), else ``$QUINTET_DATA``, else
``../shared/data`` beside the clone when that folder exists, else ``~/.cache/quintet``. A known file whose sum differs from the recorded one is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from quintet.core.errors import QuintetError

DEFAULT_ROOT = Path("~/.cache/quintet")
#: ``<clone>/../shared/data``: the data root beside a source checkout (``src/quintet/datasets/`` -> clone)
BESIDE_CLONE = Path(__file__).resolve().parents[3].parent / "shared" / "data"

# data set -> folder under the root
DATASETS: dict[str, str] = {
    "mnist": "mnist",
    "adult": "uci/adult",
    "breast-cancer": "uci/breast-cancer",
    "monks": "uci/monks",
    "sst2": "sst2",
    "sst2-pdro": "sst2-pdro",
    "sst-harvardnlp": "sst-harvardnlp",
    "pararel": "pararel",
    "camvid": "camvid",
    "sketchgraphs": "sketchgraphs",
}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$QUINTET_DATA``, else ``../shared/data`` beside the clone
    when it exists, else ``~/.cache/quintet``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("QUINTET_DATA")
    if env:
        return Path(env).expanduser()
    return BESIDE_CLONE if BESIDE_CLONE.is_dir() else DEFAULT_ROOT.expanduser()


def json_records(lines: Iterable[str], source: str | os.PathLike) -> Iterator[dict]:
    """The objects of a JSON-lines text, blank lines skipped; a line that is not a JSON object
    raises :class:`QuintetError` naming ``source`` and the line number."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuintetError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise QuintetError(f"{source}:{number}: expected a JSON object")
        yield record


@lru_cache(maxsize=1)
def recorded_sums() -> dict[str, str]:
    """sha256 of every known file, keyed by its path relative to the data root."""
    return json.loads((Path(__file__).with_name("checksums.json")).read_text())


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, relpath: str) -> None:
    """Raise if ``path`` is a known file whose sha256 differs from the recorded one."""
    expected = recorded_sums().get(relpath)
    if expected is None:
        return
    actual = sha256(path)
    if actual != expected:
        raise QuintetError(
            f"checksum mismatch for {path}: sha256 {actual[:16]}… but {expected[:16]}… was recorded "
            "for this file; it is damaged or a different version"
        )


def require_file(relpath: str, data_dir: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """The path of ``relpath`` under the data root, checked to exist (and its checksum)."""
    root = data_root(data_dir)
    path = root / relpath
    if not path.is_file():
        raise QuintetError(
            f"data file {relpath!r} not found: looked for {path} (set --data-dir or QUINTET_DATA "
            "to the folder that holds mnist/, uci/, sst2/, pararel/, camvid/, sketchgraphs/)"
        )
    if verify:
        verify_file(path, relpath)
    return path


@dataclass(frozen=True)
class FileStatus:
    dataset: str
    relpath: str
    size: int | None
    status: str

    @property
    def size_text(self) -> str:
        if self.size is None:
            return "-"
        size, unit = float(self.size), "B"
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                break
            size /= 1024
        return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def _dataset_of(relpath: str) -> str:
    for name, folder in DATASETS.items():
        if relpath.startswith(folder + "/"):
            return name
    return relpath.split("/", 1)[0]


def check_all(root: Path | None = None, verify: bool = True) -> list[FileStatus]:
    """One row per known file: found or missing, its size, and whether its checksum matches."""
    root = root or data_root()
    rows = []
    for relpath, expected in sorted(recorded_sums().items()):
        path = root / relpath
        if not path.is_file():
            rows.append(FileStatus(_dataset_of(relpath), relpath, None, "missing"))
            continue
        status = "found"
        if verify:
            status = "ok" if sha256(path) == expected else "CHECKSUM MISMATCH"
        rows.append(FileStatus(_dataset_of(relpath), relpath, path.stat().st_size, status))
    return rows
