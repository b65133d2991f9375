"""Sorting supervision on four-digit MNIST (Petersen et al., NeurIPS 2021, Sec. 5.1): a CNN scores
each image, the scores of a set arranged in the true order go through the relaxed bubble sort,
and the loss is the expected number of swaps.  The same harness (data, CNN, metrics, from
:mod:`quintet.sorting.ranking`) also trains with a differentiable sorting network for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.training import fit
from quintet.core.distributed import current
from quintet.core.errors import QuintetError, check_choice
from quintet.sorting.functional import diffsort
from quintet.sorting.losses import ranking_loss, ranks_from_scores
from quintet.sorting.ranking import (
    DigitSource,
    MultiDigitSets,
    ScoreCNN,
    evaluate_ranking,
    steepness_for,
)

__all__ = ["SortingConfig", "train_sorting", "SORTING_METHODS"]

SORTING_METHODS = ("bubble", "odd_even", "bitonic")


@dataclass(frozen=True)
class SortingConfig:
    """``method``: ``bubble`` (relaxed bubble sort, swap-count loss, inverse temperature ``beta``)
    or a sorting network of :mod:`quintet.sorting` (``odd_even``, ``bitonic``; its own steepness)."""

    method: str = "bubble"
    n: int = 5
    beta: float = 8.0
    steps: int = 1000
    batch_size: int = 32
    lr: float = 10 ** -3.5
    width: tuple[int, int] = field(default=(16, 32))
    eval_sets: int = 500
    eval_every: int = 200
    seed: int = 0

    def check(self) -> None:
        check_choice("sorting method", self.method, SORTING_METHODS)
        if self.n < 2 or self.steps < 1 or self.batch_size < 1 or not self.beta > 0:
            raise QuintetError(f"need n >= 2, steps >= 1, batch_size >= 1, beta > 0; got {self}")


def sorting_loss(cfg: SortingConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(scores (batch, n), values (batch, n))`` for the configured method."""
    if cfg.method == "bubble":
        def bubble(scores, values):
            in_true_order = scores.gather(1, torch.argsort(values, 1))
            return relaxed_bubble_sort(in_true_order, cfg.beta)[1].mean()

        return bubble
    steepness, _ = steepness_for(cfg.method, cfg.n)

    def network(scores, values):
        _, perm = diffsort(scores, network=cfg.method, steepness=steepness)
        return ranking_loss(perm, ranks_from_scores(values))

    return network


def train_sorting(cfg: SortingConfig, source: DigitSource, out: Path | None = None, time_limit: float | None = None,
                  log: Callable[[str], None] = print) -> dict:
    """Train :class:`~quintet.sorting.ranking.ScoreCNN` from orderings only; returns exact-match and
    element-wise accuracy on ``eval_sets`` fixed test sets, plus the loop's record."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    train_sets = MultiDigitSets(*source.train, n=cfg.n)
    test_sets = MultiDigitSets(*source.test, n=cfg.n)
    h, w = source.train[0].shape[-2:]
    model = ScoreCNN(h, 4 * w, channels=tuple(cfg.width))
    loss = sorting_loss(cfg)
    dist = current()
    dist.check_batch(cfg.batch_size)

    def step_loss(gen):
        images, values = dist.shard(*train_sets.sample(cfg.batch_size, gen))
        return loss(model(images), values) * dist.weight(cfg.batch_size)

    record = fit(model, step_loss, steps=cfg.steps, lr=cfg.lr, seed=cfg.seed, config=asdict(cfg), out=out,
                 evaluate=lambda: evaluate_ranking(model, test_sets, min(cfg.eval_sets, 200), seed=cfg.seed + 7),
                 eval_every=cfg.eval_every, time_limit=time_limit, log=log)
    final = evaluate_ranking(model, test_sets, cfg.eval_sets, seed=cfg.seed + 11)
    return {**final, **record, "model": model}
