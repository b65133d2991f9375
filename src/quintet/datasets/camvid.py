"""CamVid (SegNet's 11-class version) at 120×90, with each frame's sequence id."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from quintet.core.errors import QuintetError
from quintet.datasets.registry import require_file

CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
]
CAMVID_VOID = 11
SPLITS = ("train", "val", "test")


@dataclass
class CamVidSplit:
    """``images uint8 (N, 90, 120, 3)``, ``labels uint8 (N, 90, 120)`` (11 = void), names, sequences."""

    images: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    sequences: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def load_camvid(data_dir: str | os.PathLike | None = None) -> dict[str, CamVidSplit]:
    """The three standard splits (367 / 101 / 233 frames) from ``camvid/camvid_small.npz``."""
    path = require_file("camvid/camvid_small.npz", data_dir)
    try:
        with np.load(path, allow_pickle=False) as archive:
            out = {
                split: CamVidSplit(*(archive[f"{split}_{key}"] for key in ("images", "labels", "names", "sequences")))
                for split in SPLITS
            }
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise QuintetError(f"{path}: not a CamVid archive with train/val/test arrays ({exc})") from exc
    for split, data in out.items():
        if data.images.ndim != 4 or data.images.shape[-1] != 3 or data.labels.shape != data.images.shape[:3]:
            raise QuintetError(f"{path}: {split} images {data.images.shape} and labels {data.labels.shape} disagree")
        if data.labels.max() > CAMVID_VOID:
            raise QuintetError(f"{path}: {split} labels reach {data.labels.max()}, above void ({CAMVID_VOID})")
    return out
