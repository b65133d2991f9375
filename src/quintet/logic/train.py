"""Training loop of a randomly connected logic gate network (Petersen et al. 2022, Sec. 5): Adam on
the softmax cross-entropy of ``GroupSum`` outputs, checkpoints that resume exactly, and accuracy
both relaxed (train mode) and discretised (eval mode)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError, check_choice
from quintet.core.io import latest_checkpoint, load_checkpoint, save_checkpoint
from quintet.logic.conv import ConvLogicTree, OrPool, conv_logic_network
from quintet.logic.data import DATASETS, BinaryDataset
from quintet.logic.layers import INITS, LogicLayer, logic_network
from quintet.logic.wiring import SCHEMES

# Fields that fix the network's shape: a checkpoint resumes only when they agree.
ARCHITECTURE = ("dataset", "in_dim", "classes", "arch", "width", "depth", "connections", "channels")
ARCHS = ("dense", "conv")
TRAIN_EVAL_ROWS = 10_000  # training accuracy is measured on the first rows only


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``in_dim``/``classes`` are filled from the data set."""

    dataset: str = "monk1"
    width: int = 24
    depth: int = 2
    tau: float = 1.0
    lr: float = 0.01
    batch_size: int = 100
    steps: int = 2000
    connections: str = "unique"
    init: str = "normal"
    grad_factor: float = 1.0
    seed: int = 0
    eval_every: int = 500
    arch: str = "dense"
    channels: tuple[int, int] = (16, 32)
    in_dim: int = 0
    classes: int = 0

    def __post_init__(self) -> None:
        check_choice("data set", self.dataset, DATASETS)
        check_choice("architecture", self.arch, ARCHS)
        if self.arch == "conv" and self.dataset != "mnist":
            raise QuintetError(f"the conv architecture takes 28x28 images (dataset mnist), got {self.dataset!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise QuintetError(f"channels must be two positive integers, got {self.channels}")
        check_choice("wiring scheme", self.connections, SCHEMES)
        check_choice("initialisation", self.init, INITS)
        for name in ("width", "depth", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise QuintetError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.lr <= 0 or self.tau <= 0 or self.grad_factor <= 0:
            raise QuintetError(f"need steps >= 0 and lr, tau, grad_factor > 0; got steps={self.steps}, "
                               f"lr={self.lr}, tau={self.tau}, grad_factor={self.grad_factor}")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_model(cfg: TrainConfig) -> nn.Sequential:
    """The network a config describes (wiring drawn from ``cfg.seed``)."""
    if cfg.in_dim < 1 or cfg.classes < 1:
        raise QuintetError(f"config lacks in_dim/classes (got {cfg.in_dim}, {cfg.classes})")
    if cfg.arch == "conv":
        return conv_logic_network(cfg.classes, cfg.channels, cfg.width, cfg.depth, cfg.tau, cfg.seed, cfg.init)
    return logic_network(cfg.in_dim, cfg.width, cfg.depth, cfg.classes, cfg.tau, cfg.connections, cfg.init,
                         cfg.grad_factor, seed=cfg.seed)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The rows of step ``step``: epoch-wise shuffles drawn from (seed, epoch), so a resumed run
    sees the same batches as an uninterrupted one."""
    size = min(batch_size, n)
    per_epoch = max(1, n // size)
    epoch, offset = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[offset * size:(offset + 1) * size]


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, discrete: bool, batch: int = 1000,
             dist: Dist | None = None) -> float:
    """Accuracy in eval mode (``discrete=True``: argmax gates) or train mode (relaxed gates). Under
    several processes each predicts its share of the rows and the predictions are gathered."""
    dist = dist or current()
    was_training = model.training
    model.train(not discrete)
    lo, hi = dist.bounds(len(x))
    predicted = [model(torch.from_numpy(x[i:min(i + batch, hi)]).float()).argmax(1) for i in range(lo, hi, batch)]
    mine = torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.int64)
    model.train(was_training)
    correct = int((dist.gather(mine, len(x)).numpy() == y).sum())
    return correct / max(1, len(x))


def gate_count(model: nn.Module) -> int:
    """Logic gates of a network; a convolutional tree counts once per position on 28x28 input
    (after each OR pool the side halves)."""
    total, side = 0, 28
    for m in model.modules():
        if isinstance(m, LogicLayer):
            total += m.out_dim
        elif isinstance(m, ConvLogicTree):
            total += m.gate_count(side, side)
            side = (side + 2 * m.padding - m.kernel_size) // m.stride + 1
        elif isinstance(m, OrPool):
            side //= m.kernel_size
    return total


def _check_architecture(saved: dict, cfg: TrainConfig, path: Path) -> None:
    try:
        old = TrainConfig.from_dict(saved)
    except (QuintetError, TypeError) as exc:
        raise QuintetError(f"checkpoint {path} holds an unreadable config: {exc}") from exc
    diffs = [f"{k}={getattr(old, k)!r} (wanted {getattr(cfg, k)!r})" for k in ARCHITECTURE
             if getattr(old, k) != getattr(cfg, k)]
    if diffs:
        raise QuintetError(f"checkpoint {path} is of another architecture: {', '.join(diffs)}")


def train(cfg: TrainConfig, data: BinaryDataset, out: str | Path | None = None,
          log: Callable[[str], None] = print, checkpoint_every: int | None = None,
          time_limit: float | None = None) -> dict:
    """Train (resuming from ``out``'s latest checkpoint when there is one); return metrics and model.

    ``train_seconds`` excludes the evaluations; ``time_limit`` bounds training plus evaluation.

    Returns ``{"model", "steps", "train_seconds", "history", "test_acc_discrete", "test_acc_relaxed",
    "train_acc_discrete" (on the first ``TRAIN_EVAL_ROWS`` rows), "gates"}``.
    """
    cfg = TrainConfig.from_dict({**asdict(cfg), "in_dim": data.in_dim, "classes": data.classes})
    dist = current()
    dist.check_batch(min(cfg.batch_size, len(data.x_train)))
    log = dist.main_only(log)
    model = build_model(cfg)
    dist.broadcast_parameters(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, history, seconds = 0, [], 0.0
    resume_from = dist.latest_checkpoint(out)
    if resume_from is not None:
        saved = load_checkpoint_config(resume_from)
        _check_architecture(saved, cfg, Path(out))
        state = load_checkpoint(resume_from, model, optimizer)
        step, history = state["step"], state["extra"].get("history", [])
        seconds = state["extra"].get("train_seconds", 0.0)
        log(f"resumed from step {step}")
    x_train = torch.from_numpy(data.x_train)
    y_train = torch.from_numpy(data.y_train)
    every = checkpoint_every or cfg.eval_every
    model.train()
    start, eval_seconds = time.perf_counter(), 0.0
    while step < cfg.steps:
        rows = batch_indices(len(x_train), cfg.batch_size, step, cfg.seed)
        idx = dist.shard(rows)  # this process's part of the global batch
        loss = nn.functional.cross_entropy(model(x_train[idx].float()), y_train[idx]) * dist.weight(len(rows))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        dist.sync_gradients(model.parameters())
        optimizer.step()
        step += 1
        out_of_time = time_limit is not None and dist.any(time.perf_counter() - start > time_limit)
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            eval_start = time.perf_counter()
            row = {"step": step, "loss": round(float(dist.all_sum(loss.detach())) / dist.world, 5),
                   "seconds": round(seconds + eval_start - start - eval_seconds, 2),
                   "test_acc_discrete": accuracy(model, data.x_test, data.y_test, discrete=True),
                   "test_acc_relaxed": accuracy(model, data.x_test, data.y_test, discrete=False)}
            history.append(row)
            eval_seconds += time.perf_counter() - eval_start
            log(f"step {step}: loss {row['loss']:.4f}, test acc discrete {row['test_acc_discrete']:.4f}, "
                f"relaxed {row['test_acc_relaxed']:.4f}")
        if out is not None and dist.is_main and (step % every == 0 or step == cfg.steps or out_of_time):
            save_checkpoint(out, model, step=step, config=asdict(cfg), optimizer=optimizer,
                            extra={"history": history,
                                   "train_seconds": seconds + time.perf_counter() - start - eval_seconds})
        if out_of_time:
            break
    seconds += time.perf_counter() - start - eval_seconds
    model.eval()
    return {
        "model": model, "config": asdict(cfg), "steps": step, "train_seconds": round(seconds, 2), "history": history,
        "gates": gate_count(model),
        "test_acc_discrete": accuracy(model, data.x_test, data.y_test, discrete=True),
        "test_acc_relaxed": accuracy(model, data.x_test, data.y_test, discrete=False),
        "train_acc_discrete": accuracy(model, data.x_train[:TRAIN_EVAL_ROWS], data.y_train[:TRAIN_EVAL_ROWS],
                                       discrete=True),
    }


def load_checkpoint_config(path: str | Path) -> dict:
    """The ``config.json`` of a checkpoint directory or of a run directory's latest checkpoint."""
    import json

    path = Path(path)
    resolved = latest_checkpoint(path) if (path / "latest").is_file() else path
    if resolved is None or not (resolved / "config.json").is_file():
        raise QuintetError(f"no checkpoint (config.json) found at {path}")
    return json.loads((resolved / "config.json").read_text())


def load_model(path: str | Path) -> nn.Sequential:
    """A trained network (eval mode) from a checkpoint or run directory; its wiring comes from the
    checkpoint's buffers, so no data set is read."""
    cfg = TrainConfig.from_dict(load_checkpoint_config(path))
    model = build_model(cfg)
    try:
        load_checkpoint(path, model)
    except RuntimeError as exc:  # shape mismatch inside load_state_dict
        raise QuintetError(f"checkpoint {path} does not match its own config: {str(exc).splitlines()[0]}") from exc
    return model.eval()
