"""From attribution scores to knowledge neurons (Dai et al., 2022, §3.2).

1. *Coarse* neurons of one prompt: attribution ``>= t * max`` attribution over all layers
   (``t = 0.2``).
2. *Refining*: over the bag of prompts that express one fact, keep the neurons that are coarse
   in more than a fraction ``p`` of the prompts (the sharing percentage threshold).
3. ``p`` is adapted per relation so that a fact keeps 2–5 neurons on average (the paper's
   "we adjust p for each relation"): we scan ``p`` over a grid up to "every prompt" and take the
   value inside the band closest to the starting point ``p0 = 0.7`` (else the value nearest the
   band). The authors' released script moves p by ±0.05 from 0.7 for at most 6 steps.
   :func:`adapt_refinement` adds one step the paper does not need on BERT-base: when even
   neurons coarse in *every* prompt of a bag are more than ``high`` on average, p cannot go
   further, so the coarse threshold ``t`` is raised from 0.2 (in steps of 0.05) until the band is
   reached — reported per relation, never silently.
4. The activation baseline (§4.1): the neurons with the highest activation at the target
   position, averaged over the bag's prompts, as many as the fact's knowledge neurons.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

from quintet.core.errors import QuintetError

Neuron = tuple[int, int]  # (layer, index)

# 0, 0.05, ..., 0.95 and 0.99 (= "in every prompt" for bags of fewer than 100 prompts)
DEFAULT_GRID = [round(0.05 * k, 2) for k in range(20)] + [0.99]


def coarse_neurons(scores: torch.Tensor, threshold: float = 0.2) -> list[Neuron]:
    """Neurons with ``score >= threshold * max(score)``; ``scores``: ``(n_layers, n_neurons)``.

    A prompt whose maximum attribution is not positive has no coarse neurons.
    """
    if not 0.0 < threshold <= 1.0:
        raise QuintetError(f"threshold t must be in (0, 1], got {threshold}")
    top = float(scores.max())
    if top <= 0:
        return []
    layer, index = torch.nonzero(scores >= threshold * top, as_tuple=True)
    return [(int(li), int(i)) for li, i in zip(layer, index)]


def refine_neurons(coarse: Sequence[Sequence[Neuron]], p: float) -> list[Neuron]:
    """Neurons coarse in more than ``p * len(coarse)`` prompts of a bag (sorted)."""
    if not 0.0 <= p < 1.0:
        raise QuintetError(f"sharing ratio p must be in [0, 1), got {p}")
    if not coarse:
        return []
    counts = Counter(n for prompt in coarse for n in set(map(tuple, prompt)))
    return sorted(n for n, c in counts.items() if c > p * len(coarse))


def adapt_sharing_ratio(
    bags: Sequence[Sequence[Sequence[Neuron]]],
    low: float = 2.0,
    high: float = 5.0,
    p0: float = 0.7,
    grid: Sequence[float] | None = None,
) -> float:
    """The ``p`` for one relation: mean refined-neuron count per fact within ``[low, high]``.

    ``bags``: per fact, the coarse neurons of each of its prompts.
    """
    grid = list(grid) if grid is not None else DEFAULT_GRID
    if not bags:
        return p0

    def mean_count(p: float) -> float:
        return sum(len(refine_neurons(b, p)) for b in bags) / len(bags)

    means = {p: mean_count(p) for p in grid}
    inside = [p for p, v in means.items() if low <= v <= high]
    if inside:
        return min(inside, key=lambda p: (abs(p - p0), p))
    return min(grid, key=lambda p: (max(low - means[p], means[p] - high), abs(p - p0)))


def mean_refined(bags: Sequence[Sequence[Sequence[Neuron]]], p: float) -> float:
    """Mean number of refined neurons per fact at sharing ratio ``p``."""
    return sum(len(refine_neurons(b, p)) for b in bags) / max(1, len(bags))


def adapt_refinement(
    scores: Sequence[Sequence[torch.Tensor]],
    low: float = 2.0,
    high: float = 5.0,
    threshold: float = 0.2,
    p0: float = 0.7,
    max_threshold: float = 0.9,
    step: float = 0.05,
) -> tuple[float, float]:
    """``(t, p)`` for one relation so its facts keep ``low``–``high`` refined neurons on average.

    ``scores``: per fact, the attribution scores ``(n_layers, n_neurons)`` of each of its prompts.
    ``p`` is adapted at the paper's ``t = threshold`` first (:func:`adapt_sharing_ratio`); only if
    the mean stays above ``high`` at the largest ``p`` is ``t`` raised by ``step`` (up to
    ``max_threshold``), keeping the ``(t, p)`` nearest the band if none lands inside it.
    """
    if not 0.0 < threshold <= max_threshold <= 1.0:
        raise QuintetError(f"need 0 < threshold <= max_threshold <= 1, got {threshold} and {max_threshold}")
    best: tuple[float, float, float] | None = None  # (distance to band, t, p)
    t = threshold
    while t <= max_threshold + 1e-9:
        bags = [[coarse_neurons(s, t) for s in fact] for fact in scores]
        p = adapt_sharing_ratio(bags, low, high, p0)
        mean = mean_refined(bags, p)
        distance = max(low - mean, mean - high, 0.0)
        if best is None or distance < best[0]:
            best = (distance, round(t, 4), p)
        if mean <= high:  # inside the band, or below it: a larger t only removes neurons
            break
        t += step
    assert best is not None
    return best[1], best[2]


def activation_baseline(activations: torch.Tensor, k: int) -> list[Neuron]:
    """The ``k`` neurons with the highest mean activation; ``activations``: ``(n_prompts, L, N)``
    or ``(L, N)``."""
    if activations.dim() == 3:
        activations = activations.mean(0)
    k = max(0, min(k, activations.numel()))
    if k == 0:
        return []
    index = activations.flatten().topk(k).indices
    n = activations.shape[1]
    return sorted((int(i) // n, int(i) % n) for i in index)


def layer_histogram(neurons: Sequence[Neuron], n_layers: int) -> list[int]:
    """How many neurons fall in each layer (Fig. 3 of the paper)."""
    hist = [0] * n_layers
    for layer, _ in neurons:
        hist[layer] += 1
    return hist
