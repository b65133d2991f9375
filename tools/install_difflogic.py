"""Install the pure-Python path of ``difflogic==0.1.0`` (the peer of ``quintet.logic``) on a CPU.

difflogic's setup.py builds a CUDA extension, and ``import difflogic`` imports the compiled
``difflogic_cuda`` module, so ``pip install difflogic`` fails on a machine without CUDA. This script
reads the sdist's address from the package index (PEP 691 JSON), downloads it, checks its
sha256, copies the Python package ``difflogic/`` into this interpreter's site-packages and writes
a stub ``difflogic_cuda`` module whose functions raise. The reference's ``implementation="python"``
layers, ``GroupSum`` and ``CompiledLogicNet`` then work on the CPU.

    python tools/install_difflogic.py            # no-op when difflogic already imports
    python tools/install_difflogic.py --force    # reinstall
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import sys
import sysconfig
import tarfile
import urllib.request
from pathlib import Path

VERSION = "0.1.0"
SDIST = f"difflogic-{VERSION}.tar.gz"
SHA256 = "979ce845a494bdf8ebeeb94d61f3bbf1ae018257ee5b048f936567b53fc115a1"
INDEX = "https://pypi.org/simple/difflogic/"
STUB = '''"""Stub written by quintet's tools/install_difflogic.py: difflogic's CUDA kernels are not built.

difflogic's ``implementation="python"`` layers and ``CompiledLogicNet`` do not call this module.
"""


def __getattr__(name):
    def _missing(*args, **kwargs):
        raise RuntimeError(f"difflogic_cuda.{name}: the CUDA extension is not built on this machine")

    return _missing
'''


def sdist_url() -> str:
    """The sdist's download address, from the index's JSON API."""
    request = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == SDIST:
            return entry["url"]
    raise SystemExit(f"{SDIST} is not listed at {INDEX}")


def download(cache: Path) -> bytes:
    """The sdist's bytes (from ``cache`` when present), checked against the pinned sha256."""
    target = cache / SDIST
    data = target.read_bytes() if target.is_file() else urllib.request.urlopen(sdist_url(), timeout=120).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{SDIST}: sha256 {digest} differs from the pinned {SHA256}")
    cache.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data


def install(data: bytes, site: Path) -> Path:
    """Copy ``difflogic/*.py`` out of the sdist into ``site`` and add the ``difflogic_cuda`` stub."""
    package = site / "difflogic"
    package.mkdir(parents=True, exist_ok=True)
    prefix = f"difflogic-{VERSION}/difflogic/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = [m for m in archive.getmembers()
                   if m.isfile() and m.name.startswith(prefix) and m.name.endswith(".py") and "/" not in m.name[len(prefix):]]
        if not members:
            raise SystemExit(f"{SDIST} holds no difflogic/*.py")
        for member in members:
            (package / member.name[len(prefix):]).write_bytes(archive.extractfile(member).read())
    (site / "difflogic_cuda.py").write_text(STUB)
    return package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even when difflogic imports")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "quintet" / "sdists")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("difflogic") is not None and not args.force:
        print("difflogic is already importable; nothing to do")
        return 0
    package = install(download(args.cache), Path(sysconfig.get_paths()["purelib"]))
    print(f"installed difflogic {VERSION} (pure-Python path, stub difflogic_cuda) into {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
