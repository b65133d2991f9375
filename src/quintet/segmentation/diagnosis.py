"""Does the memory read guide the prediction?  (Kim et al. 2022, Sec. 3.2: the read is meant to
pull each pixel towards its class slot.)

For a trained model with memory, on each domain: the mean entropy of the slot attention (nats;
``ln K`` for a uniform read), the mean largest attention weight (``1/K`` for a uniform read), the
range and per-pixel spread of the query–slot cosines, and the mIoU with the read as trained,
forced uniform (every pixel reads the mean slot) and with a zero read-out.  If forcing the read
uniform leaves mIoU unchanged, the per-pixel read carries no information the decoder uses.

How sharp can the read be?  Queries are ASPP outputs after a ReLU and slots are normalised means
of (write-network) ReLU outputs, so every cosine lies in ``[0, 1]``, not ``[−1, 1]``.  A softmax
over ``K`` logits ``cos / T`` confined to ``[0, 1/T]`` puts at most
``1 / (1 + (K − 1)·exp(−1/T))`` on one slot — 0.214 for 11 slots at ``T = 1`` — and its entropy
is at least 94.9 % of ``ln K`` for 11 slots at ``T = 1`` (reached with four slots at cosine 1, the
rest at 0): at the authors' temperature the read is almost uniform by construction.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.segmentation.data import Domain, to_tensor
from quintet.segmentation.experiments import evaluate, predict
from quintet.segmentation.models import SegmentationNet

READ_OVERRIDES = ("uniform", "zero")


@contextmanager
def forced_read(model: SegmentationNet, mode: str) -> Iterator[SegmentationNet]:
    """Within the block the memory read of ``model`` is replaced (``mode`` in READ_OVERRIDES)."""
    if model.memory is None:
        raise QuintetError("the model has no memory to read")
    if mode not in READ_OVERRIDES:
        raise QuintetError(f"unknown read override {mode!r}; expected one of: {', '.join(READ_OVERRIDES)}")
    model.memory.read_override = mode
    try:
        yield model
    finally:
        model.memory.read_override = None


def attention_stats(attention: np.ndarray) -> dict[str, float]:
    """``attention: (..., K)`` rows summing to 1 -> mean entropy (nats), mean max weight, and the
    uniform read's values ``ln K`` and ``1/K``."""
    k = attention.shape[-1]
    a = attention.reshape(-1, k).astype(np.float64)
    entropy = -(a * np.log(np.clip(a, 1e-30, None))).sum(1)
    return {"entropy": float(entropy.mean()), "ln_k": math.log(k), "max_attention": float(a.max(1).mean()),
            "uniform_max": 1.0 / k}


def max_attention_bound(num_slots: int, temperature: float, cos_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Largest possible attention weight of a softmax over ``num_slots`` cosines in ``cos_range``
    divided by ``temperature``: one slot at the top of the range, all others at the bottom,
    ``1 / (1 + (K − 1)·exp(−(hi − lo)/T))``.  ``cos_range=(0, 1)`` holds for non-negative
    queries and slots (ReLU features)."""
    lo, hi = cos_range
    return 1.0 / (1.0 + (num_slots - 1) * math.exp(-(hi - lo) / temperature))


def min_entropy_bound(num_slots: int, temperature: float, cos_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Smallest possible entropy (nats) of that softmax.

    It is reached at a corner of the box of logits: ``m`` slots at the top of ``cos_range``, the
    other ``K − m`` at the bottom, with the best ``m`` — not always ``m = 1``: for 11 slots at
    ``T = 1`` four slots at the top give 94.9 % of ``ln K`` against 97.1 % for one."""
    lo, hi = cos_range
    a = math.exp((hi - lo) / temperature)
    best = math.inf
    for m in range(1, num_slots):
        z = m * a + num_slots - m
        top, rest = a / z, 1.0 / z
        best = min(best, -(m * top * math.log(top) + (num_slots - m) * rest * math.log(rest)))
    return best


@torch.no_grad()
def cosine_stats(model: SegmentationNet, images: np.ndarray, batch: int = 16) -> dict[str, float]:
    """Query–slot cosines of ``model`` on ``images uint8 (N, H, W, 3)``: smallest, largest, and the
    per-pixel standard deviation over slots, averaged over pixels."""
    model.eval()
    lo, hi, spread, count = math.inf, -math.inf, 0.0, 0
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch]).to(next(model.parameters()).device)
        scores = model(x)["scores"].double()
        lo, hi = min(lo, float(scores.min())), max(hi, float(scores.max()))
        spread += float(scores.std(dim=-1).sum())
        count += scores[..., 0].numel()
    return {"cos_min": lo, "cos_max": hi, "cos_spread": spread / max(count, 1)}


def memory_read_diagnosis(model: SegmentationNet, domains: Sequence[Domain]) -> dict[str, Any]:
    """Per domain: attention statistics and mIoU with the read as trained / uniform / zero."""
    if model.memory is None:
        raise QuintetError("memory-read diagnosis needs a model with memory")
    k, t = model.num_classes, model.memory.read_temperature
    out: dict[str, Any] = {"bound_max_attention": max_attention_bound(k, t), "bound_min_entropy": min_entropy_bound(k, t)}
    for d in domains:
        _, att = predict(model, d.images, return_attention=True)
        row: dict[str, Any] = attention_stats(att) | cosine_stats(model, d.images)
        row["miou"] = evaluate(model, d)["miou"]
        for mode in READ_OVERRIDES:
            with forced_read(model, mode):
                row[f"miou_{mode}"] = evaluate(model, d)["miou"]
        out[d.name] = row
    return out


__all__ = ["READ_OVERRIDES", "attention_stats", "cosine_stats", "forced_read", "max_attention_bound",
           "memory_read_diagnosis", "min_entropy_bound"]
