"""Multi-digit ranking supervision (ICML 2021 Sec. 5.1; ICLR 2022 Sec. 6).

A sample is a set of ``n`` images, each showing a four-digit number as 4 digits side by side;
a CNN maps every image to one scalar, the scalars go through a differentiable sorting network,
and the only supervision is the true order: ``ranking_loss(P, true_ranks)`` (BCE against the
true permutation matrix).  Metrics on the test split: exact match (the whole set ranked right)
and element-wise correct rank.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from quintet.core.errors import QuintetError
from quintet.core.io import latest_checkpoint, load_checkpoint, save_checkpoint
from quintet.sorting.functional import diffsort
from quintet.sorting.losses import ranking_loss, ranks_from_scores
from quintet.sorting.networks import get_network
from quintet.sorting.paper_numbers import steepness_for
from quintet.sorting.relaxations import resolve_relaxation

__all__ = ["RankingConfig", "DigitSource", "MultiDigitSets", "ScoreCNN", "train_ranking", "evaluate_ranking",
           "steepness_for", "mnist_source", "sklearn_digits_source"]


@dataclass(frozen=True)
class RankingConfig:
    """One ranking run.  ``steepness=None`` takes :func:`~quintet.sorting.paper_numbers.steepness_for`
    (the authors' README value where it gives one, else a value interpolated between those, not
    a number from the papers; see :mod:`quintet.sorting.paper_numbers`)."""

    n: int = 5
    network: str = "odd_even"
    relaxation: str = "cauchy"
    steepness: float | None = None
    art_lambda: float = 0.25
    digits: int = 4
    steps: int = 1500
    batch_size: int = 32
    lr: float = 10 ** -3.5
    eval_sets: int = 1000
    eval_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    source: str = "mnist"
    width: tuple[int, int] = field(default=(16, 32))

    def beta(self) -> float:
        return self.beta_and_source()[0]

    def beta_and_source(self) -> tuple[float, str]:
        """``(steepness, source)``; source is "given", "README", "interpolated" or "default"."""
        if self.steepness is not None:
            return float(self.steepness), "given"
        return steepness_for(self.network, self.n)


@dataclass
class DigitSource:
    """Single-digit images ``float32 (N, H, W)`` (normalised) and labels ``int64 (N,)`` per split."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    name: str


def mnist_source(data_dir=None) -> DigitSource:
    from quintet.datasets import load_mnist

    def prep(split):
        images, labels = load_mnist(split, data_dir=data_dir)
        x = (torch.from_numpy(np.asarray(images, dtype=np.float32)) / 255.0 - 0.1307) / 0.3081
        return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))

    return DigitSource(prep("train"), prep("test"), "mnist")


def sklearn_digits_source(seed: int = 0) -> DigitSource:
    """scikit-learn's bundled 8x8 digits (1797 images), split 70/30 (no data root needed)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.images / 16.0 - 0.5).astype(np.float32))
    y = torch.from_numpy(data.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.7 * len(y))
    return DigitSource((x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]]), "sklearn-digits")


class MultiDigitSets:
    """Sets of ``n`` multi-digit numbers drawn from one split; values distinct within a set."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n: int, digits: int = 4):
        self.images, self.labels, self.n, self.digits = images, labels, n, digits
        self.by_digit = [torch.nonzero(labels == d).flatten() for d in range(10)]
        self.place = 10 ** torch.arange(digits - 1, -1, -1)

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (batch, n, H, digits*W)`` and ``values int64 (batch, n)``."""
        values = torch.stack([torch.randperm(10**self.digits, generator=gen)[: self.n] for _ in range(batch)])
        digit = values.unsqueeze(-1) // self.place % 10  # (batch, n, digits)
        pick = torch.empty_like(digit)
        for d in range(10):
            mask = digit == d
            pool = self.by_digit[d]
            pick[mask] = pool[torch.randint(len(pool), (int(mask.sum()),), generator=gen)]
        tiles = self.images[pick]  # (batch, n, digits, H, W)
        imgs = tiles.permute(0, 1, 3, 2, 4).reshape(batch, self.n, tiles.shape[-2], -1)
        return imgs, values


class ScoreCNN(nn.Module):
    """Image ``(…, H, W)`` -> scalar; two 5x5 conv + pool stages and a two-layer head (the
    reference's MultiDigitMNISTNet, with configurable widths)."""

    def __init__(self, height: int, width: int, channels: tuple[int, int] = (32, 64), hidden: int = 64):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * (height // 4) * (width // 4), hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-2]
        out = self.head(self.features(images.reshape(-1, 1, *images.shape[-2:])))
        return out.reshape(lead)


@torch.no_grad()
def evaluate_ranking(model: nn.Module, sets: MultiDigitSets, count: int, seed: int, batch: int = 100) -> dict:
    """Exact-match and element-wise rank accuracy on ``count`` fixed sets."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    exact = elem = total = 0
    for start in range(0, count, batch):
        b = min(batch, count - start)
        imgs, values = sets.sample(b, gen)
        right = ranks_from_scores(model(imgs)) == ranks_from_scores(values)
        exact += int(right.all(-1).sum())
        elem += int(right.sum())
        total += b
    model.train()
    return {"exact_match": exact / total, "element_wise": elem / (total * sets.n)}


def train_ranking(cfg: RankingConfig, source: DigitSource, out: Path | None = None,
                  log: Callable[[str], None] = print, time_limit: float | None = None) -> dict:
    """Train ``ScoreCNN`` from orderings only; resumes from ``out/checkpoints`` when present.

    Returns ``{"exact_match", "element_wise", "steps", "seconds", "curve": [...]}``.
    """
    if cfg.n < 2:
        raise QuintetError(f"n must be >= 2, got {cfg.n}")
    get_network(cfg.network, cfg.n)
    resolve_relaxation(cfg.relaxation)
    torch.manual_seed(cfg.seed)
    train_sets = MultiDigitSets(*source.train, n=cfg.n, digits=cfg.digits)
    test_sets = MultiDigitSets(*source.test, n=cfg.n, digits=cfg.digits)
    h, w = source.train[0].shape[-2:]
    model = ScoreCNN(h, w * cfg.digits, channels=tuple(cfg.width))
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, curve = 0, []
    ckpt_dir = out / "checkpoints" if out is not None else None
    if ckpt_dir is not None and latest_checkpoint(ckpt_dir) is not None:
        state = load_checkpoint(ckpt_dir, model, optim)
        step, curve = state["step"], state["extra"].get("curve", [])
        gen.manual_seed(cfg.seed + 1 + step)
        log(f"resumed from step {step}")
    beta = cfg.beta()
    start = time.perf_counter()
    losses = []
    while step < cfg.steps:
        imgs, values = train_sets.sample(cfg.batch_size, gen)
        scores = model(imgs)
        _, perm = diffsort(scores, network=cfg.network, relaxation=cfg.relaxation, steepness=beta,
                           art_lambda=cfg.art_lambda)
        loss = ranking_loss(perm, ranks_from_scores(values))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(loss.item())
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate_ranking(model, test_sets, min(cfg.eval_sets, 300), seed=cfg.seed + 10_000)
            curve.append({"step": step, "loss": float(np.mean(losses[-50:])), **metrics})
            log(f"step {step}: loss {curve[-1]['loss']:.4f} exact {metrics['exact_match']:.3f} "
                f"elementwise {metrics['element_wise']:.3f}")
        if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(ckpt_dir, model, step=step, config=asdict(cfg), optimizer=optim,
                            extra={"curve": curve, "seed": cfg.seed})
        if time_limit is not None and time.perf_counter() - start > time_limit:
            log(f"time limit reached at step {step}")
            break
    final = evaluate_ranking(model, test_sets, cfg.eval_sets, seed=cfg.seed + 20_000)
    return {**final, "steps": step, "seconds": round(time.perf_counter() - start, 1), "curve": curve,
            "steepness": beta, "steepness_source": cfg.beta_and_source()[1], "model": model}
