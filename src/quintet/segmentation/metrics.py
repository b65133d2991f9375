"""Confusion matrices and mean intersection-over-union (void / ignore pixels excluded)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from quintet.core.errors import QuintetError
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


def paired_statistics(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int]:
    """Paired comparison of two methods run with the same seeds: differences ``d = a − b``, their
    mean, sample standard deviation (ddof 1), the paired t statistic ``mean / (std / √n)`` with
    ``n − 1`` degrees of freedom, its two-sided p-value, and the number of seeds where ``a > b``.
    A zero standard deviation gives ``t = ±inf`` (or NaN when the mean is zero too)."""
    from scipy.stats import t as student_t

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise QuintetError(f"paired statistics need two 1-D sequences of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise QuintetError(f"paired statistics need at least 2 pairs (seeds), got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise QuintetError("paired statistics need finite values")
    d = x - y
    mean, std, n = float(d.mean()), float(d.std(ddof=1)), len(d)
    if std > 0:
        t = mean / (std / math.sqrt(n))
    else:
        t = math.copysign(math.inf, mean) if mean != 0 else math.nan
    p = float(2 * student_t.sf(abs(t), n - 1)) if not math.isnan(t) else math.nan
    return {"n": n, "mean": mean, "std": std, "t": t, "df": n - 1, "p": p, "wins": int((d > 0).sum())}


def detectable_difference(std: float, n: int, alpha: float = 0.05, power: float | None = None) -> float:
    """The smallest mean paired difference a two-sided paired t test over ``n`` pairs with sample
    standard deviation ``std`` declares significant at level ``alpha``: ``t_{1−α/2, n−1}·std/√n``.

    With ``power`` (e.g. 0.8) the smallest *true* difference detected with that probability, in the
    usual approximation ``(t_{1−α/2, n−1} + t_{power, n−1})·std/√n`` (the standard deviation taken
    as known)."""
    from scipy.stats import t as student_t

    if n < 2:
        raise QuintetError(f"a paired test needs at least 2 pairs, got {n}")
    if not 0.0 < alpha < 1.0 or (power is not None and not 0.0 < power < 1.0):
        raise QuintetError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    q = float(student_t.ppf(1 - alpha / 2, n - 1))
    if power is not None:
        q += float(student_t.ppf(power, n - 1))
    return q * std / math.sqrt(n)


__all__ = ["confusion_matrix", "detectable_difference", "iou_from_confusion", "mean_iou", "paired_statistics"]
