"""Multi-digit ranking supervision (ICML 2021 Sec. 5.1; ICLR 2022 Sec. 6).

A sample is a set of ``n`` images, each showing a four-digit number as 4 digits side by side;
a CNN maps every image to one scalar, the scalars go through a differentiable sorting network,
and the only supervision is the true order: ``ranking_loss(P, true_ranks)`` (BCE against the
true permutation matrix).  Metrics on the test split: exact match (the whole set ranked right)
and element-wise correct rank.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError
from quintet.core.io import (
    load_checkpoint,
    load_tensors,
    save_checkpoint,
    save_tensors,
)
from quintet.sorting.functional import diffsort
from quintet.sorting.losses import ranking_loss, ranks_from_scores
from quintet.sorting.networks import resolve_network
from quintet.sorting.paper_numbers import steepness_for
from quintet.sorting.relaxations import resolve_relaxation

__all__ = ["RankingConfig", "DigitSource", "MultiDigitSets", "ScoreCNN", "train_ranking", "evaluate_ranking",
           "steepness_for", "mnist_source", "sklearn_digits_source", "estimate_memory", "check_memory",
           "check_resumable"]


@dataclass(frozen=True)
class RankingConfig:
    """One ranking run.  ``steepness=None`` takes :func:`~quintet.sorting.paper_numbers.steepness_for`
    (the authors' README value where it gives one, else a value interpolated between those, not
    a number from the papers; see :mod:`quintet.sorting.paper_numbers`).

    ``ties``: draw every digit of every number independently, as the authors' sampler does, so a
    set may hold equal values (their true order is the stable one); otherwise values are distinct.
    ``valid_size``: images held out from the end of the training split (the papers: 5000 of 60000);
    with it, every ``eval_every`` steps ``valid_sets`` validation sets are scored and the test
    score reported is the one of the weights with the best validation exact match.
    """

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
    ties: bool = False
    valid_size: int = 0
    valid_sets: int = 300

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
    """Sets of ``n`` multi-digit numbers drawn from one split.

    ``ties=False``: values distinct within a set (needs ``n <= 10^digits``); ``ties=True``: every
    digit of every number drawn independently, so equal values can occur (the authors' sampler).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n: int, digits: int = 4, ties: bool = False):
        if not ties and n > 10**digits:
            raise QuintetError(f"n = {n} distinct {digits}-digit numbers do not exist; expected n <= {10**digits}")
        self.images, self.labels, self.n, self.digits, self.ties = images, labels, n, digits, ties
        self.by_digit = [torch.nonzero(labels == d).flatten() for d in range(10)]
        self.place = 10 ** torch.arange(digits - 1, -1, -1)

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (batch, n, H, digits*W)`` and ``values int64 (batch, n)``."""
        if self.ties:
            pick = torch.randint(len(self.labels), (batch, self.n, self.digits), generator=gen)
            values = (self.labels[pick] * self.place).sum(-1)
        else:
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
def evaluate_ranking(model: nn.Module, sets: MultiDigitSets, count: int, seed: int, batch: int = 100,
                     dist: Dist | None = None) -> dict:
    """Exact-match and element-wise rank accuracy on ``count`` fixed sets (equal values count in
    their stable order, as the true permutation of the loss). Under several processes each scores
    its shard of every batch and the scores are gathered, so every set counts once."""
    dist = dist or current()
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    exact = elem = total = 0
    for start in range(0, count, batch):
        b = min(batch, count - start)
        imgs, values = sets.sample(b, gen)
        scores = dist.gather(model(dist.shard(imgs).to(next(model.parameters()).device)).cpu(), b)
        right = ranks_from_scores(scores) == ranks_from_scores(values)
        exact += int(right.all(-1).sum())
        elem += int(right.sum())
        total += b
    model.train()
    return {"exact_match": exact / total, "element_wise": elem / (total * sets.n)}


# settings that may change between a run and its resumption (they do not change what is trained);
# every other one must match
RESUMABLE = ("steps", "checkpoint_every", "eval_sets")


def _comparable(config: dict) -> dict:
    plain = json.loads(json.dumps(config))  # tuples -> lists, as stored
    return {k: v for k, v in plain.items() if k not in RESUMABLE}


def check_resumable(saved: dict, cfg: RankingConfig, where: Path) -> None:
    """Refuse to resume ``where`` under a configuration other than the one it was trained with."""
    old, new = _comparable(saved), _comparable(asdict(cfg))
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        raise QuintetError(f"{where} holds a checkpoint of another configuration ({'; '.join(diff)}); "
                           "use another --out or the same settings")


def estimate_memory(cfg: RankingConfig, image_shape: tuple[int, int] = (28, 28)) -> int:
    """Bytes one training step needs, roughly: the batch's images, the CNN's activations and their
    gradients, and the sorting network (``P``, the per-layer differences kept for the backward,
    the loss)."""
    h, w = image_shape[0], image_shape[1] * cfg.digits
    c1, c2 = cfg.width
    images = cfg.batch_size * cfg.n
    # input and its tiles, conv1 + ReLU + pool (with indices), conv2 + ReLU + pool; x2 for gradients
    per_image = h * w * (3 + 2 * c1 + c1 / 2 + 2 * c2 / 4 + c2 / 8)
    n = cfg.n
    size = n if resolve_network(cfg.network) == "odd_even" else 2 ** max(1, math.ceil(math.log2(n)))
    if resolve_network(cfg.network) == "odd_even":
        kept = cfg.batch_size * n * n * (n - 1) / 2
    else:
        kept = min(cfg.batch_size * size * size * max(size.bit_length() - 2, 1), 2**25)
    sorting = kept + 8 * cfg.batch_size * size * size
    return int(4 * (2 * images * per_image + sorting))


def check_memory(cfg: RankingConfig, image_shape: tuple[int, int] = (28, 28), max_bytes: int | None = None) -> int:
    """:func:`estimate_memory`, refused with :class:`QuintetError` above ``max_bytes`` (default: the
    memory available now)."""
    need = estimate_memory(cfg, image_shape)
    if max_bytes is None:
        import psutil

        limit, what = psutil.virtual_memory().available, "available"
    else:
        limit, what = int(max_bytes), "allowed by --max-memory"
    if need > limit:
        raise QuintetError(f"a training step at n = {cfg.n}, batch {cfg.batch_size} needs about "
                           f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB {what}; "
                           "lower --n or --batch-size")
    return need


def _splits(cfg: RankingConfig, source: DigitSource) -> tuple[MultiDigitSets, MultiDigitSets | None, MultiDigitSets]:
    """Training, validation (the last ``valid_size`` training images, or ``None``) and test sets."""
    images, labels = source.train
    if not 0 <= cfg.valid_size < len(labels):
        raise QuintetError(f"valid_size must be in 0..{len(labels) - 1}, got {cfg.valid_size}")
    cut = len(labels) - cfg.valid_size
    make = lambda x, y: MultiDigitSets(x, y, n=cfg.n, digits=cfg.digits, ties=cfg.ties)  # noqa: E731
    valid = make(images[cut:], labels[cut:]) if cfg.valid_size else None
    return make(images[:cut], labels[:cut]), valid, make(*source.test)


def _check_config(cfg: RankingConfig) -> None:
    for name in ("n", "steps", "batch_size", "eval_every", "checkpoint_every", "eval_sets", "valid_sets"):
        value = getattr(cfg, name)
        low = 2 if name == "n" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise QuintetError(f"{name} must be an integer >= {low}, got {value!r}")
    resolve_network(cfg.network)  # the layout itself is built after the memory check
    resolve_relaxation(cfg.relaxation)


def _step_generator(cfg: RankingConfig, step: int) -> torch.Generator:
    """The sampler's generator for training step ``step``: a function of the step alone, so that a
    resumed run draws exactly the batches an uninterrupted one would."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 1)


def _local_device(device: str | torch.device, dist: Dist) -> torch.device:
    """``device``, or this process's own GPU when several processes were asked for plain ``cuda``."""
    device = torch.device(device)
    if dist.world > 1 and device.type == dist.device.type and device.index is None:
        return dist.device
    return device


def train_ranking(cfg: RankingConfig, source: DigitSource, out: Path | None = None,
                  log: Callable[[str], None] = print, time_limit: float | None = None, until: int | None = None,
                  progress: bool = False, max_memory: int | None = None, evaluate: bool = True,
                  device: str | torch.device = "cpu") -> dict:
    """Train ``ScoreCNN`` from orderings only; resumes from ``out/checkpoints`` when present (after
    checking that they were written under the same configuration).

    Trains to ``cfg.steps`` (or to step ``until``, for runs done in pieces) or until ``time_limit``
    seconds have passed.  With ``evaluate`` the test score is computed at the end: of the weights
    with the best validation exact match when ``cfg.valid_size`` is set, else of the last weights.
    ``device``: where the CNN and the sorting network run (the sampler stays on the CPU).
    Returns ``{"steps", "seconds", "curve", "steepness", "steepness_source", "model"}`` plus
    ``{"exact_match", "element_wise", "best_step", "valid_exact_match"}`` with ``evaluate``.
    """
    _check_config(cfg)
    dist = current()
    dist.check_batch(cfg.batch_size)
    log, progress = dist.main_only(log), progress and dist.is_main
    check_memory(cfg, tuple(source.train[0].shape[-2:]), max_memory)
    train_sets, valid_sets, test_sets = _splits(cfg, source)
    torch.manual_seed(cfg.seed)
    h, w = source.train[0].shape[-2:]
    device = _local_device(device, dist)
    model = ScoreCNN(h, w * cfg.digits, channels=tuple(cfg.width)).to(device)
    dist.broadcast_parameters(model)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, curve, best, spent = 0, [], {"step": 0, "valid_exact_match": -1.0}, 0.0
    losses: list[float] = []  # the last 50 training losses (the curve's smoothed loss)
    ckpt_dir = out / "checkpoints" if out is not None else None
    best_file = out / "best.safetensors" if out is not None else None
    best_state = None
    resume_from = dist.latest_checkpoint(ckpt_dir)
    if resume_from is not None:
        saved = json.loads((resume_from / "config.json").read_text())
        check_resumable(saved, cfg, out)
        state = load_checkpoint(resume_from, model, optim)
        step, curve = state["step"], state["extra"].get("curve", [])
        best = state["extra"].get("best", best)
        spent = state["extra"].get("train_seconds", 0.0)
        losses = state["extra"].get("recent_losses", [])
        log(f"resumed from step {step}")
    beta, beta_source = cfg.beta_and_source()
    target = cfg.steps if until is None else min(until, cfg.steps)
    start = time.perf_counter()
    bar = tqdm(total=target, initial=step, desc=f"{cfg.network} n={cfg.n}", unit="step", disable=not progress,
               dynamic_ncols=True)
    say = bar.write if progress else log
    while step < target:
        # every process draws the same global batch and keeps its rows of it
        imgs, values = dist.shard(*train_sets.sample(cfg.batch_size, _step_generator(cfg, step)))
        scores = model(imgs.to(device))
        _, perm = diffsort(scores, network=cfg.network, relaxation=cfg.relaxation, steepness=beta,
                           art_lambda=cfg.art_lambda)
        loss = ranking_loss(perm, ranks_from_scores(values).to(device)) * dist.weight(cfg.batch_size)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        dist.sync_gradients(model.parameters())
        optim.step()
        losses = [*losses[-49:], float(dist.all_sum(loss.detach().cpu())) / dist.world]
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            if valid_sets is not None:
                metrics = evaluate_ranking(model, valid_sets, cfg.valid_sets, seed=cfg.seed + 30_000)
                split = "valid"
                if metrics["exact_match"] > best["valid_exact_match"]:
                    best = {"step": step, "valid_exact_match": metrics["exact_match"]}
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if best_file is not None and dist.is_main:
                        save_tensors(best_file, best_state)
            else:
                metrics = evaluate_ranking(model, test_sets, min(cfg.eval_sets, 300), seed=cfg.seed + 10_000)
                split = "test"
            curve.append({"step": step, "loss": float(np.mean(losses)), "split": split, **metrics})
            say(f"step {step}: loss {curve[-1]['loss']:.4f} {split} exact {metrics['exact_match']:.3f} "
                      f"elementwise {metrics['element_wise']:.3f}")
        out_of_time = time_limit is not None and dist.any(time.perf_counter() - start > time_limit)
        if ckpt_dir is not None and dist.is_main and (step % cfg.checkpoint_every == 0 or step == target or out_of_time):
            save_checkpoint(ckpt_dir, model, step=step, config=asdict(cfg), optimizer=optim,
                            extra={"curve": curve, "seed": cfg.seed, "best": best, "recent_losses": losses,
                                   "train_seconds": spent + time.perf_counter() - start})
        if out_of_time:
            say(f"time limit reached at step {step}")
            break
    bar.close()
    elapsed = time.perf_counter() - start
    result = {"steps": step, "seconds": round(elapsed, 1), "train_seconds": round(spent + elapsed, 1), "curve": curve,
              "steepness": beta, "steepness_source": beta_source, "model": model}
    if evaluate:
        scored = model
        if valid_sets is not None and best["step"] > 0:  # else no validation yet: the last weights
            if best_state is None and best_file is not None and best_file.is_file():
                best_state = load_tensors(best_file, device)
            if best_state is not None:
                scored = ScoreCNN(h, w * cfg.digits, channels=tuple(cfg.width)).to(device)
                scored.load_state_dict(best_state)
        final = evaluate_ranking(scored, test_sets, cfg.eval_sets, seed=cfg.seed + 20_000)
        validated = valid_sets is not None and best["step"] > 0
        result.update(final, best_step=best["step"] if validated else step,
                      valid_exact_match=best["valid_exact_match"] if validated else None)
    return result
