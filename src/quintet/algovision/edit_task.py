"""Edit-distance supervision on strings of MNIST digits (Petersen et al., NeurIPS 2021, Sec. 5):
a CNN classifies every character image; the only training signal is the relaxed Levenshtein
distance between the class distributions of two strings, regressed onto their true distance.

Pairs are a random string and a copy with a few random substitutions, deletions and insertions
(cut or padded back to the same length).  The distance cannot tell the classes apart up to a
renaming, so character accuracy is measured after the best one-to-one matching of predicted to
true classes (Hungarian algorithm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from quintet.algovision.edit_distance import levenshtein, soft_edit_distance
from quintet.algovision.training import fit
from quintet.core.distributed import current
from quintet.core.errors import QuintetError
from quintet.sorting.ranking import DigitSource

__all__ = ["EditConfig", "DigitCNN", "StringPairs", "train_edit", "matched_accuracy"]


@dataclass(frozen=True)
class EditConfig:
    length: int = 4
    edits: int = 4
    beta: float = 5.0
    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    width: tuple[int, int] = field(default=(8, 16))
    eval_digits: int = 2000
    eval_every: int = 100
    seed: int = 0

    def check(self) -> None:
        if self.length < 1 or self.edits < 0 or self.steps < 1 or self.batch_size < 1 or not self.beta > 0:
            raise QuintetError(f"need length >= 1, edits >= 0, steps >= 1, batch_size >= 1, beta > 0; got {self}")


class DigitCNN(nn.Module):
    """Digit image ``(…, H, W)`` -> class probabilities ``(…, 10)``.  Batch normalisation of the
    logits keeps every class in use: without it, training from distances alone settles on one
    input-independent distribution that only matches the mean distance."""

    def __init__(self, height: int, width: int, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(c2 * (height // 4) * (width // 4), 64), nn.ReLU(), nn.Linear(64, 10),
                                 nn.BatchNorm1d(10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-2]
        logits = self.net(images.reshape(-1, 1, *images.shape[-2:]))
        return torch.softmax(logits, -1).reshape(*lead, 10)


class StringPairs:
    """Pairs of digit strings (label sequences and their images) from one split."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, length: int, edits: int):
        self.images, self.labels, self.length, self.edits = images, labels, length, edits
        self.by_digit = [torch.nonzero(labels == d).flatten() for d in range(10)]

    def _edit(self, s: list[int], gen: torch.Generator) -> list[int]:
        s = list(s)
        for _ in range(int(torch.randint(self.edits + 1, (1,), generator=gen))):
            kind, pos = torch.randint(3, (1,), generator=gen).item(), torch.randint(len(s), (1,), generator=gen).item()
            digit = torch.randint(10, (1,), generator=gen).item()
            if kind == 0:
                s[pos] = digit
            elif kind == 1:
                s = s[:pos] + s[pos + 1:] + [digit]
            else:
                s = (s[:pos] + [digit] + s[pos:])[: self.length]
        return s

    def _draw(self, strings: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        pick = torch.empty_like(strings)
        for d in range(10):
            mask = strings == d
            pool = self.by_digit[d]
            pick[mask] = pool[torch.randint(len(pool), (int(mask.sum()),), generator=gen)]
        return self.images[pick]

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images ``a, b: (batch, length, H, W)`` and true distances ``(batch,)``."""
        a = torch.randint(10, (batch, self.length), generator=gen)
        b = torch.tensor([self._edit(row, gen) for row in a.tolist()])
        dist = torch.tensor([float(levenshtein(x, y)) for x, y in zip(a.tolist(), b.tolist())])
        return self._draw(a, gen), self._draw(b, gen), dist


def matched_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy after the best one-to-one renaming of predicted classes (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((10, 10))
    np.add.at(counts, (predicted, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(labels))


def train_edit(cfg: EditConfig, source: DigitSource, out: Path | None = None, time_limit: float | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Train :class:`DigitCNN` from edit distances only; returns matched character accuracy on
    ``eval_digits`` test digits and the mean absolute error of the hard distance on test pairs."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    pairs = StringPairs(*source.train, cfg.length, cfg.edits)
    test_pairs = StringPairs(*source.test, cfg.length, cfg.edits)
    model = DigitCNN(*source.train[0].shape[-2:], channels=tuple(cfg.width))
    images, labels = source.test[0][: cfg.eval_digits], source.test[1][: cfg.eval_digits]

    procs = current()
    procs.check_batch(cfg.batch_size)

    def step_loss(gen):
        a, b, dist = procs.shard(*pairs.sample(cfg.batch_size, gen))
        return ((soft_edit_distance(model(a), model(b), cfg.beta) - dist) ** 2).mean() * procs.weight(cfg.batch_size)

    def evaluate():
        predicted = model(images).argmax(-1).numpy()
        a, b, dist = test_pairs.sample(200, torch.Generator().manual_seed(cfg.seed + 5))
        one_hot = nn.functional.one_hot
        hard = soft_edit_distance(one_hot(model(a).argmax(-1), 10).float(), one_hot(model(b).argmax(-1), 10).float(),
                                  cfg.beta, hard=True)
        return {"char_accuracy": matched_accuracy(predicted, labels.numpy()),
                "distance_mae": float((hard - dist).abs().mean())}

    record = fit(model, step_loss, steps=cfg.steps, lr=cfg.lr, seed=cfg.seed, config=asdict(cfg), out=out,
                 evaluate=evaluate, eval_every=cfg.eval_every, time_limit=time_limit, log=log)
    model.eval()
    with torch.no_grad():
        final = evaluate()
    return {**final, **record, "model": model}
