"""Confusion matrices and mean intersection-over-union (void / ignore pixels excluded)."""

from __future__ import annotations

import numpy as np
import torch

from quintet.segmentation.losses import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``(K, K)`` counts, rows = ground truth, columns = prediction; ignored pixels dropped."""
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    keep = (t != ignore_index) & (t >= 0) & (t < num_classes)
    return torch.bincount(t[keep] * num_classes + p[keep], minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(conf: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)``; NaN for a class absent from both prediction and truth."""
    c = np.asarray(conf, dtype=np.float64)
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: torch.Tensor | np.ndarray) -> float:
    """Mean IoU over the classes that occur (``nanmean`` of :func:`iou_from_confusion`)."""
    iou = iou_from_confusion(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


__all__ = ["confusion_matrix", "iou_from_confusion", "mean_iou"]
