"""Pieces of data-parallel training that the segmentation loops need beyond
:mod:`quintet.core.distributed`.

* :func:`all_reduce_sum` sums a tensor over processes *differentiably*: the memory write of Pin the
  Memory averages features per class over the whole global batch (the class sums of every
  process's rows are added up), and the divergence and slot-classification losses of the written
  memory are then the same on every process. In the backward pass the gradient of the sum is
  summed over processes as well; since every process computes the same loss of the summed tensor,
  each receives ``W`` times the gradient of its own contribution and the gradient average
  (:meth:`Dist.sync_gradients`) divides by ``W`` again.
* :func:`pixel_cross_entropy` is the cross-entropy of one process's rows scaled so that the
  gradient average equals the gradient of the mean over the non-ignored pixels of the global
  batch: ``W · Σ_local ℓ / N_valid`` with ``N_valid`` counted over all processes (rows hold
  different numbers of void pixels, so a row weight would not do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from quintet.core.distributed import Dist
from quintet.segmentation.losses import IGNORE_INDEX

__all__ = ["all_reduce_sum", "pixel_cross_entropy"]


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dist: Dist) -> torch.Tensor:  # type: ignore[override]
        ctx.dist, ctx.where = dist, tensor.device
        total = tensor.detach().clone().to(dist.device)
        torch.distributed.all_reduce(total)
        return total.to(tensor.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        total = grad.detach().clone().contiguous().to(ctx.dist.device)
        torch.distributed.all_reduce(total)
        return total.to(ctx.where), None


def all_reduce_sum(dist: Dist, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over processes, differentiable (the identity in one process)."""
    if dist.world == 1:
        return tensor
    return _AllReduceSum.apply(tensor, dist)


def pixel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, dist: Dist,
                        ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, float]:
    """``(loss, value)``: ``loss`` is this process's share of the global pixel-mean cross-entropy
    (its gradients, averaged over processes, are those of the global mean) and ``value`` the global
    mean itself, the same on every process. ``logits (B, K, H, W)``, ``labels (B, H, W)``."""
    labels = labels.long()
    if dist.world == 1:
        loss = F.cross_entropy(logits, labels, ignore_index=ignore_index)
        return loss, float(loss.detach())
    local = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    counts = dist.all_sum(torch.stack([(labels != ignore_index).sum().double().cpu(),
                                       local.detach().double().cpu()]))
    valid = float(counts[0]) or float("nan")  # no valid pixel anywhere: NaN, as in one process
    return local * (dist.world / valid), float(counts[1]) / valid
