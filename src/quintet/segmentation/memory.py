"""The categorical memory of Pin the Memory (Kim et al. 2022, Sec. 3.2–3.3).

One L2-normalised slot per class, ``memory: (K, D)``.

* **Read** (Sec. 3.2, Eq. 1–2): each query feature ``q`` (ASPP output, normalised) is compared
  with every slot by cosine similarity; the attention over slots is a softmax (or, as in the
  authors' training, a Gumbel-softmax) of those cosines; the read-out ``sum_k a_k m_k`` is
  concatenated with the query and fused back to ``D`` channels by a 1×1 conv + BN + ReLU.
* **Write** (Sec. 3.3, Eq. 3): features pass a small residual write network, are normalised,
  averaged per class under the (down-sampled) label mask, and each slot of a class present in
  the batch moves as ``m ← normalise(0.8·m + 0.2·mean)``; absent classes are left untouched.

The functions below are the maths; :class:`CategoricalMemory` holds the slots and the learned
layers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(||x||, eps)`` along ``dim``."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def memory_scores(query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query pixel to every slot (Sec. 3.2, Eq. 1).

    ``query: (B, D, h, w)`` (any norm), ``memory: (K, D)`` (unit rows) -> ``(B, h, w, K)``.
    """
    q = l2_normalize(query, dim=1)
    return torch.einsum("bdhw,kd->bhwk", q, memory)


def read_attention(scores: torch.Tensor, temperature: float = 1.0, gumbel: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Attention over slots (Eq. 2): ``softmax(scores / T)`` over the last axis.

    With ``gumbel=True`` Gumbel noise ``-log(-log U)`` is added to the logits first (the
    authors' stochastic read, ``F.gumbel_softmax`` with soft samples); evaluation defaults to the
    deterministic softmax.
    """
    logits = scores / temperature
    if gumbel:
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        gumbel_noise = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))
        logits = logits + gumbel_noise
    return torch.softmax(logits, dim=-1)


def read_memory(query: torch.Tensor, memory: torch.Tensor, temperature: float = 1.0, gumbel: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Memory read (Eq. 1–2).

    ``query: (B, D, h, w)``, ``memory: (K, D)`` -> ``(readout (B, D, h, w), attention (B, h, w, K),
    scores (B, h, w, K))``; ``readout = attention @ memory``.
    """
    scores = memory_scores(query, memory)
    attention = read_attention(scores, temperature, gumbel, generator)
    readout = torch.einsum("bhwk,kd->bdhw", attention, memory)
    return readout, attention, scores


def mean_pairwise_cosine(slots: torch.Tensor) -> float:
    """Mean cosine between distinct rows of ``slots: (K, D)`` (zero rows count as cosine 0)."""
    m = l2_normalize(slots.detach().double(), dim=1)
    k = m.shape[0]
    cos = m @ m.t()
    return float((cos.sum() - cos.diagonal().sum()) / (k * (k - 1)))


def label_masks(labels: torch.Tensor, num_classes: int, size: tuple[int, int], ignore_index: int = 255) -> torch.Tensor:
    """Soft class masks at feature resolution: one-hot labels averaged over each feature cell.

    ``labels: (B, H, W)`` ints in ``[0, K)`` or ``ignore_index`` -> ``(B, K, h, w)`` in [0, 1].
    """
    lab = labels.long().clone()
    lab[(lab < 0) | (lab >= num_classes)] = num_classes  # ignore -> an extra channel, dropped below
    onehot = F.one_hot(lab, num_classes + 1).permute(0, 3, 1, 2).float()
    return F.adaptive_avg_pool2d(onehot, size)[:, :num_classes]


def class_sums(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
               ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class weighted feature sums and weights.

    ``features: (B, D, h, w)``, ``labels: (B, H, W)`` -> ``(sums (K, D), weights (K,))``; the class
    mean is ``sums / weights`` where ``weights > 0``.
    """
    masks = label_masks(labels, num_classes, features.shape[2:], ignore_index).to(features.dtype)
    sums = torch.einsum("bkhw,bdhw->kd", masks, features)
    return sums, masks.sum(dim=(0, 2, 3))


def momentum_update(memory: torch.Tensor, sums: torch.Tensor, weights: torch.Tensor,
                    momentum: float = 0.8) -> torch.Tensor:
    """Slot update (Eq. 3): ``m_k ← normalise(momentum·m_k + (1 − momentum)·mean_k)`` for every
    class with ``weights_k > 0``; other slots are returned unchanged.  ``memory: (K, D)``."""
    present = weights > 0
    means = sums / weights.clamp_min(1e-12).unsqueeze(1)
    moved = l2_normalize(momentum * memory + (1.0 - momentum) * means, dim=1)
    return torch.where(present.unsqueeze(1), moved, memory)


class WriteNet(nn.Module):
    """Residual write network: ``relu(x + BN(conv1x1(x)))`` (the authors' 'Writingnet')."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        nn.init.normal_(self.conv.weight, std=1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn(self.conv(x)))


class CategoricalMemory(nn.Module):
    """The categorical memory of Sec. 3.2–3.3: ``num_slots`` unit slots ``float (K, dim)`` (a
    buffer, saved with the model), the 1×1 fusion layer of the read, the write network and the
    slot classifier used by the classification loss."""

    def __init__(self, num_slots: int, dim: int, momentum: float = 0.8, read_temperature: float = 1.0,
                 gumbel: bool = False):
        super().__init__()
        self.num_slots, self.dim, self.momentum = num_slots, dim, momentum
        self.read_temperature, self.gumbel = read_temperature, gumbel
        self.read_override: str | None = None  # "uniform" / "zero": read ablations for diagnosis only
        # on several processes: sums a write's class sums and weights over processes
        # (differentiably), so a write sees the whole global batch; None in one process
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.register_buffer("slots", l2_normalize(torch.rand(num_slots, dim), dim=1))
        self.fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.writer = WriteNet(dim)
        self.classifier = nn.Linear(dim, num_slots)
        nn.init.normal_(self.classifier.weight, std=1e-4)  # the authors' initialisation of the slot classifier
        nn.init.zeros_(self.classifier.bias)

    def read(self, feat: torch.Tensor, slots: torch.Tensor | None = None,
             gumbel: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``feat: (B, D, h, w)`` -> ``(fused (B, D, h, w), attention, scores (B, h, w, K))``.

        Gumbel noise is used in training when configured; evaluation reads deterministically
        unless ``gumbel=True`` is passed.  ``read_override`` (diagnosis) replaces the attention by
        the uniform ``1/K`` ("uniform") or the read-out by zeros ("zero").
        """
        slots = self.slots if slots is None else slots
        use_gumbel = (self.gumbel and self.training) if gumbel is None else gumbel
        readout, attention, scores = read_memory(feat, slots, self.read_temperature, use_gumbel)
        if self.read_override == "uniform":
            attention = torch.full_like(attention, 1.0 / self.num_slots)
            readout = torch.einsum("bhwk,kd->bdhw", attention, slots)
        elif self.read_override == "zero":
            readout = torch.zeros_like(readout)
        fused = self.fuse(torch.cat([l2_normalize(feat, dim=1), readout], 1))
        return fused, attention, scores

    def write(self, feat: torch.Tensor, labels: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """New slots written from ``feat: (B, D, h, w)`` under ``labels: (B, H, W)``; differentiable
        with respect to the write network and the features; does not store them."""
        slots = self.slots if slots is None else slots
        w = l2_normalize(self.writer(feat), dim=1)
        sums, weights = class_sums(w, labels, self.num_slots)
        if self.reduce is not None:
            sums, weights = self.reduce(sums), self.reduce(weights)
        return momentum_update(slots, sums, weights, self.momentum)

    def forward(self, feat: torch.Tensor, labels: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`write` (so ``torch.func.functional_call`` can run a write)."""
        return self.write(feat, labels, slots)

    @torch.no_grad()
    def store(self, new_slots: torch.Tensor) -> None:
        self.slots.copy_(new_slots.detach())

    @torch.no_grad()
    def initialise(self, sums: torch.Tensor, weights: torch.Tensor) -> None:
        """Slots from class-wise feature means (the authors' initialisation); a class never seen
        gets a zero slot (cosine 0 to every query) until its first write, as in the authors' code."""
        means = l2_normalize(sums / weights.clamp_min(1e-12).unsqueeze(1), dim=1)
        self.slots.copy_(torch.where((weights > 0).unsqueeze(1), means, torch.zeros_like(means)))


__all__ = ["CategoricalMemory", "WriteNet", "class_sums", "l2_normalize", "label_masks", "mean_pairwise_cosine",
           "memory_scores", "momentum_update", "read_attention", "read_memory"]
