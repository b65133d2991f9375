"""MNIST in its IDX format (gzip), as distributed by LeCun et al."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from quintet.core.errors import QuintetError
from quintet.datasets.registry import require_file

_FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
# IDX magic numbers: 0x00000803 = unsigned byte, 3 dimensions; 0x00000801 = 1 dimension.
_MAGIC = {3: 0x0803, 1: 0x0801}


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes with ``ndim`` dimensions."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise QuintetError(f"{path}: cannot decompress ({exc}); the file is truncated or not gzip") from exc
    if len(data) < 4 + 4 * ndim:
        raise QuintetError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != _MAGIC[ndim]:
        raise QuintetError(f"{path}: IDX magic number {magic:#010x}, expected {_MAGIC[ndim]:#010x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise QuintetError(f"{path}: header says shape {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``uint8 (N, 28, 28)`` and labels ``int64 (N,)``; split is train or test."""
    if split not in _FILES:
        raise QuintetError(f"unknown MNIST split {split!r}; expected train or test")
    image_file, label_file = (require_file(f, data_dir) for f in _FILES[split])
    images = read_idx(image_file, 3)
    labels = read_idx(label_file, 1).astype(np.int64)
    if len(images) != len(labels):
        raise QuintetError(f"{image_file} has {len(images)} images but {label_file} {len(labels)} labels")
    return images, labels
