"""Losses of Pin the Memory (Kim et al. 2022, Sec. 3.4) and their weights.

``L = L_seg + 0.4·L_aux + 0.02·L_cohesion + 0.4·L_divergence + 0.2·L_cls``: the weights of the
authors' released GTAV+SYNTHIA script (``--mem_readloss 0.02 --mem_divloss 0.4
--mem_clsloss 0.2``, auxiliary head 0.4).

* ``feature_cohesion_loss`` (the "read" loss, Eq. 5): cross-entropy of the slot cosines
  (divided by a temperature) against the labels, pulling each pixel's feature towards its class
  slot and away from the others.
* ``memory_divergence_loss`` (Eq. 4): the mean positive cosine between distinct slots of the
  freshly written memory, pushing slots of different classes apart.
* ``slot_classification_loss``: a linear classifier must recognise each written slot's class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from quintet.core.distributed import Dist

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LossWeights:
    """Weights of the auxiliary and memory losses (Sec. 3.4; the values of the authors'
    GTAV+SYNTHIA script); 0 switches a term off (ablations)."""

    aux: float = 0.4
    cohesion: float = 0.02
    divergence: float = 0.4
    classification: float = 0.2
    cohesion_temperature: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel cross-entropy, the segmentation term of Sec. 3.4. ``logits: float (B, K, H, W)``,
    ``labels: int (B, H, W)`` (``ignore_index`` pixels do not count) -> scalar."""
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_index)


def aux_loss(aux_logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy of the auxiliary head against nearest-down-sampled labels."""
    return F.cross_entropy(aux_logits, _aux_labels(aux_logits, labels), ignore_index=ignore_index)


def feature_cohesion_loss(scores: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                          ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Feature cohesion (read) loss, Eq. 5.

    ``scores: (B, h, w, K)`` cosines between pixels and slots; they are up-sampled (bilinear) to
    the label size ``(B, H, W)`` and scored by cross-entropy with logits ``scores / temperature``.
    """
    logits = _cohesion_logits(scores, labels, temperature)
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_index)


def memory_divergence_loss(memory: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Memory divergence loss, Eq. 4: ``sum_{i != j} max(0, <m_i, m_j> − margin) / (K(K − 1))``.

    ``memory: (K, D)`` with unit rows; 0 when all slots are pairwise orthogonal or opposed.
    """
    k = memory.shape[0]
    cos = memory @ memory.t()
    off = (cos - margin).clamp_min(0.0) * (1.0 - torch.eye(k, dtype=cos.dtype, device=cos.device))
    return off.sum() / (k * (k - 1))


def slot_classification_loss(classifier: nn.Module, memory: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``classifier(memory)`` against the slot indices ``0..K-1`` (the slot
    classification term of Sec. 3.4). ``memory: float (K, D)`` -> scalar."""
    target = torch.arange(memory.shape[0], device=memory.device)
    return F.cross_entropy(classifier(memory), target)


def total_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, weights: LossWeights,
               classifier: nn.Module | None = None, dist: "Dist | None" = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the terms available in a forward's output ``out`` (see
    :meth:`SegmentationNet.forward`): seg + aux + cohesion (with memory) + divergence and
    classification (when the forward wrote a new memory).

    With ``dist`` on several processes, ``out`` and ``labels`` hold this process's rows: the pixel
    terms become its share of the global pixel means
    (:func:`quintet.segmentation.parallel.pixel_cross_entropy`), the memory terms (of a memory
    written from the whole batch) enter once, and the returned parts are global values."""
    if dist is None or dist.world == 1:
        return _total_loss(out, labels, weights, classifier)
    from quintet.segmentation.parallel import pixel_cross_entropy

    loss, seg = pixel_cross_entropy(out["logits"], labels, dist)
    parts = {"seg": seg}
    if "aux" in out and weights.aux:
        a, parts["aux"] = pixel_cross_entropy(out["aux"], _aux_labels(out["aux"], labels), dist)
        loss = loss + weights.aux * a
    if "scores" in out and weights.cohesion:
        c, parts["cohesion"] = pixel_cross_entropy(_cohesion_logits(out["scores"], labels, weights.cohesion_temperature),
                                                   labels, dist)
        loss = loss + weights.cohesion * c
    return _memory_terms(loss, out, weights, classifier, parts), parts


def _aux_labels(aux_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.interpolate(labels[:, None].float(), size=aux_logits.shape[2:], mode="nearest")[:, 0].long()


def _cohesion_logits(scores: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = scores.permute(0, 3, 1, 2) / temperature
    return F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=True)


def _memory_terms(loss: torch.Tensor, out: dict[str, torch.Tensor], weights: LossWeights,
                  classifier: nn.Module | None, parts: dict[str, float]) -> torch.Tensor:
    """``loss`` plus divergence and slot classification of a freshly written memory
    (``out["new_memory"]``); their values go into ``parts``."""
    if "new_memory" in out:
        if weights.divergence:
            d = memory_divergence_loss(out["new_memory"])
            loss = loss + weights.divergence * d
            parts["divergence"] = float(d.detach())
        if weights.classification and classifier is not None:
            c = slot_classification_loss(classifier, out["new_memory"])
            loss = loss + weights.classification * c
            parts["classification"] = float(c.detach())
    return loss


def _total_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, weights: LossWeights,
                classifier: nn.Module | None) -> tuple[torch.Tensor, dict[str, float]]:
    seg = segmentation_loss(out["logits"], labels)
    loss, parts = seg, {"seg": float(seg.detach())}
    if "aux" in out and weights.aux:
        a = aux_loss(out["aux"], labels)
        loss = loss + weights.aux * a
        parts["aux"] = float(a.detach())
    if "scores" in out and weights.cohesion:
        c = feature_cohesion_loss(out["scores"], labels, weights.cohesion_temperature)
        loss = loss + weights.cohesion * c
        parts["cohesion"] = float(c.detach())
    return _memory_terms(loss, out, weights, classifier, parts), parts


__all__ = ["IGNORE_INDEX", "LossWeights", "aux_loss", "feature_cohesion_loss", "memory_divergence_loss",
           "segmentation_loss", "slot_classification_loss", "total_loss"]
