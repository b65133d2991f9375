"""Domains for domain-generalised segmentation: CamVid re-split by sequence, input checks,
normalisation and augmentation.

CamVid's standard split mixes sequences (0001TP is in train and test), so the frames of all
three splits are pooled and re-split by sequence: sources 0006R0 (101 frames) and 0016E5 (305),
unseen targets 0001TP (dusk, 124) and Seq05VD (171).  Void (CamVid label 11) becomes 255.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.segmentation.losses import IGNORE_INDEX

CAMVID_SOURCES = ("0006R0", "0016E5")
CAMVID_TARGETS = ("0001TP", "Seq05VD")
#: every sequence (domain) of CamVid
CAMVID_SEQUENCES = ("0001TP", "0006R0", "0016E5", "Seq05VD")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class Domain:
    """One domain: ``images uint8 (N, H, W, 3)``, ``labels uint8/int (N, H, W)`` (255 = ignore)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    names: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray | slice) -> "Domain":
        return Domain(self.name, self.images[idx], self.labels[idx],
                      None if self.names is None else self.names[idx])


def check_images(images: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None, what: str = "images") -> None:
    """Raise :class:`QuintetError` unless ``images`` is ``(N, H, W, 3)`` (or ``(N, 3, H, W)`` for a
    tensor) and, when ``size=(H, W)`` is given, of that size."""
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise QuintetError(f"{what} must be a 4-d batch (N, H, W, 3), got shape {shape}")
    channels_last = not torch.is_tensor(images)
    c = shape[3] if channels_last else shape[1]
    hw = shape[1:3] if channels_last else shape[2:4]
    if c != 3:
        raise QuintetError(f"{what} must have 3 (RGB) channels, got {c} (shape {shape})")
    if size is not None and tuple(hw) != tuple(size):
        raise QuintetError(f"{what} are {hw[1]}x{hw[0]} (WxH) but the model expects {size[1]}x{size[0]}; "
                           "resize them (predict --resize) or train at that size")


def check_labels(labels: np.ndarray | torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 what: str = "labels") -> None:
    """Raise :class:`QuintetError` if a label is outside ``[0, num_classes)`` and not ``ignore_index``."""
    lab = labels if torch.is_tensor(labels) else torch.as_tensor(np.asarray(labels))
    bad = ((lab < 0) | (lab >= num_classes)) & (lab != ignore_index)
    if bool(bad.any()):
        values = sorted({int(v) for v in lab[bad].flatten()[:1000].tolist()})[:10]
        raise QuintetError(f"{what} hold values {values} outside the class range 0..{num_classes - 1} "
                           f"(and the ignore value {ignore_index})")


def camvid_domains(data_dir: str | os.PathLike | None = None) -> dict[str, Domain]:
    """All CamVid frames grouped by sequence: ``{"0001TP": Domain, "0006R0": ..., "0016E5": ...,
    "Seq05VD": ...}`` with void (11) mapped to 255, frames sorted by file name.  Cached per data
    root within a process (treat the arrays as read-only)."""
    from quintet.datasets.registry import require_file

    path = require_file("camvid/camvid_small.npz", data_dir, verify=False)
    return dict(_camvid_domains(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _camvid_domains(path: str, _mtime: int) -> dict[str, Domain]:
    from quintet.datasets import load_camvid

    splits = load_camvid(Path(path).parent.parent)
    images = np.concatenate([s.images for s in splits.values()])
    labels = np.concatenate([s.labels for s in splits.values()]).astype(np.uint8)
    names = np.concatenate([s.names for s in splits.values()])
    seqs = np.concatenate([s.sequences for s in splits.values()])
    labels[labels == 11] = IGNORE_INDEX
    out = {}
    for seq in sorted(set(seqs.tolist())):
        idx = np.where(seqs == seq)[0]
        idx = idx[np.argsort(names[idx])]
        out[seq] = Domain(seq, images[idx], labels[idx], names[idx])
    return out


def holdout_split(domain: Domain, fraction: float) -> tuple[Domain, Domain]:
    """``(train, held_out)``: the first ``ceil(fraction·N)`` frames (by file name, i.e. one
    contiguous stretch of the drive) are held out, so held-out frames have no near-duplicate
    neighbour in training except at the one boundary."""
    if not 0.0 < fraction < 1.0:
        raise QuintetError(f"held-out fraction must lie in (0, 1), got {fraction}")
    n = math.ceil(fraction * len(domain))
    if not 0 < n < len(domain):
        raise QuintetError(f"domain {domain.name!r} has {len(domain)} frames, too few to hold out {fraction:.0%}")
    return domain.subset(slice(n, None)), domain.subset(slice(0, n))


def to_unit(images: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)`` in ``[0, 1]``."""
    return torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` images ``(N, 3, H, W)`` -> ImageNet mean/std normalised."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> normalised ``float32 (N, 3, H, W)`` (ImageNet mean/std)."""
    return normalize(to_unit(images))


def augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, flip: bool = True,
            color: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flip and, with ``color > 0``, per-image brightness/contrast jitter of
    relative size ``color`` (applied to normalised images ``x: (B, 3, H, W)``, labels ``(B, H, W)``)."""
    if flip:
        f = torch.rand(x.shape[0], generator=generator) < 0.5
        x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
        y = torch.where(f.view(-1, 1, 1), y.flip(2), y)
    if color > 0:
        b = (torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * color
        c = 1 + (torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * color
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * c + m + b / 0.226
    return x, y


class DomainSampler:
    """Draws ``batch`` random frames from one domain per call, with its own generator: images
    ``float (B, 3, H, W)`` in ``[0, 1]`` (not yet normalised), labels ``int64 (B, H, W)``."""

    def __init__(self, domain: Domain, batch: int, generator: torch.Generator):
        if len(domain) == 0:
            raise QuintetError(f"domain {domain.name!r} has no frames")
        self.domain, self.batch, self.g = domain, batch, generator
        self.x = to_unit(domain.images)
        self.y = torch.as_tensor(domain.labels.astype(np.int64))

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.domain), (self.batch,), generator=self.g)
        return self.x[idx], self.y[idx]


__all__ = ["CAMVID_SEQUENCES", "CAMVID_SOURCES", "CAMVID_TARGETS", "Domain", "DomainSampler", "augment", "camvid_domains",
           "check_images", "check_labels", "holdout_split", "normalize", "to_tensor", "to_unit"]
