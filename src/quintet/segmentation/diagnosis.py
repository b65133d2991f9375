"""Does the memory read guide the prediction?  (Kim et al. 2022, Sec. 3.2: the read is meant to
pull each pixel towards its class slot.)

For a trained model with memory, on each domain: the mean entropy of the slot attention (nats;
``ln K`` for a uniform read), the mean largest attention weight (``1/K`` for a uniform read),
and the mIoU with the read as trained, forced uniform (every pixel reads the mean slot) and with
a zero read-out.  If forcing the read uniform leaves mIoU unchanged, the per-pixel read carries
no information the decoder uses.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from quintet.core.errors import QuintetError
from quintet.segmentation.data import Domain
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


def max_attention_bound(num_slots: int, temperature: float) -> float:
    """Largest possible attention weight of a softmax over cosines ``/ T``: one slot at cosine 1,
    all others at −1, ``1 / (1 + (K − 1)·exp(−2/T))``."""
    return 1.0 / (1.0 + (num_slots - 1) * math.exp(-2.0 / temperature))


def memory_read_diagnosis(model: SegmentationNet, domains: Sequence[Domain]) -> dict[str, Any]:
    """Per domain: attention statistics and mIoU with the read as trained / uniform / zero."""
    if model.memory is None:
        raise QuintetError("memory-read diagnosis needs a model with memory")
    out: dict[str, Any] = {"bound_max_attention": max_attention_bound(model.num_classes,
                                                                      model.memory.read_temperature)}
    for d in domains:
        _, att = predict(model, d.images, return_attention=True)
        row: dict[str, Any] = attention_stats(att)
        row["miou"] = evaluate(model, d)["miou"]
        for mode in READ_OVERRIDES:
            with forced_read(model, mode):
                row[f"miou_{mode}"] = evaluate(model, d)["miou"]
        out[d.name] = row
    return out


__all__ = ["READ_OVERRIDES", "attention_stats", "forced_read", "max_attention_bound", "memory_read_diagnosis"]
