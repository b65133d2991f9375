"""Training loop shared by every method: ERM, CVaR, Group DRO, uniform group weighting, ratio DRO.

One run trains one model on one task, evaluates it on the validation and test sets after every
epoch, checkpoints (resumable) and returns the per-epoch history plus the checkpoint each selection
rule picks. The ratio-DRO adversary and the model share one optimiser with two parameter groups:
one backward pass of ``model_loss + adversary_loss`` gives each player its own gradient (the
model's loss sees detached weights, the adversary's sees detached losses), so both are updated
simultaneously on the same batch (paper Section 3.4).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from quintet.core.errors import QuintetError, check_choice
from quintet.core.progress import progress_bar
from quintet.dro.models import Adversary, build_model
from quintet.dro.objectives import (
    GroupDRO,
    check_alpha,
    check_tau,
    cvar_loss,
    ratio_dro_objectives,
    self_normalized_objectives,
    uniform_group_loss,
)
from quintet.dro.selection import RULES, group_accuracies, minmax_select
from quintet.dro.tasks import TASKS, Split, TaskData, load_task

__all__ = ["METHODS", "TrainConfig", "train", "train_on"]

METHODS = ("erm", "cvar", "group-dro", "group-uniform", "ratio", "ratio-selfnorm")
RATIO_METHODS = ("ratio", "ratio-selfnorm")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``n_train=None`` uses the whole training split."""

    task: str = "biased-sst"
    method: str = "ratio"
    seed: int = 0
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    adv_lr: float | None = 1e-4  # None: same as lr
    tau: float = 0.01
    beta: float = 1.0  # self-normalisation penalty (ratio-selfnorm)
    alpha: float = 0.2  # CVaR level
    eta_q: float = 0.01  # Group DRO step size
    n_train: int | None = None
    text_model: str = "bilstm"
    weight_decay: float = 0.0

    def validate(self) -> "TrainConfig":
        check_choice("task", self.task, TASKS)
        check_choice("method", self.method, METHODS)
        check_tau(self.tau)
        check_alpha(self.alpha)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise QuintetError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.method in RATIO_METHODS and self.batch_size < 2:
            raise QuintetError(f"batch_size must be >= 2 for {self.method}: ratio weights are normalised within a "
                               f"batch, so a batch of {self.batch_size} weighs every example 1")
        if not self.lr > 0 or (self.adv_lr is not None and not self.adv_lr > 0):
            raise QuintetError(f"learning rates must be > 0, got lr={self.lr}, adv_lr={self.adv_lr}")
        if not self.eta_q > 0:
            raise QuintetError(f"eta_q must be > 0, got {self.eta_q}")
        return self


def _trim(x: torch.Tensor) -> torch.Tensor:
    """Drop all-padding trailing columns of a token batch ``(B, T)``; other inputs pass through."""
    if x.dtype == torch.long and x.dim() == 2:
        width = int((x != 0).sum(1).max().clamp_min(1))
        return x[:, :width]
    return x


class Players(nn.Module):
    """The model and (for ratio DRO) the adversary, saved together in one checkpoint."""

    def __init__(self, model: nn.Module, adversary: nn.Module | None):
        super().__init__()
        self.model = model
        self.adversary = adversary


@torch.no_grad()
def evaluate(players: Players, split: Split, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``correct: bool (N,)`` of the model and the adversary's log-ratios ``(N,)`` (or None)."""
    players.eval()
    correct, ratios = [], []
    for i in range(0, len(split), batch):
        x, y = _trim(split.x[i : i + batch]), split.y[i : i + batch]
        correct.append(players.model(x).argmax(1) == y)
        if players.adversary is not None:
            ratios.append(players.adversary(x, y))
    players.train()
    return torch.cat(correct), (torch.cat(ratios) if ratios else None)


def _summary(correct: torch.Tensor, split: Split, n_groups: int) -> dict[str, Any]:
    accs = group_accuracies(correct, split.g, n_groups)
    return {"acc": float(correct.double().mean()), "worst": float(accs[~accs.isnan()].min()),
            "groups": [float(a) for a in accs]}


def train_on(data: TaskData, config: TrainConfig, checkpoint_dir: str | Path | None = None,
             log: Callable[[str], None] | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``config.method`` on ``data``; resume from ``checkpoint_dir`` when it holds one.

    For ``ratio`` the model and the adversary play the game of paper Section 3 (Eq. 7), both
    updated on every batch; after training each selection rule of Section 4.3 picks a checkpoint.

    Returns ``{"config", "history": [per-epoch dict], "selection": {rule: {...}},
    "weights": [[mean adversary weight per group] per logged interval], "group_names",
    "seconds_per_step", "valid_errors": (epochs, N_valid), "valid_ratios": (epochs, N_valid) or None}``.
    """
    from quintet.core.io import (
        latest_checkpoint,
        load_checkpoint,
        load_tensors,
        save_checkpoint,
        save_tensors,
    )
    from quintet.core.seed import seed_everything

    config = config.validate()
    seed_everything(config.seed)
    model = build_model(data.model)
    adversary = Adversary(build_model(data.model)) if config.method in RATIO_METHODS else None
    players = Players(model, adversary)
    groups_params = [{"params": model.parameters(), "lr": config.lr}]
    if adversary is not None:
        groups_params.append({"params": adversary.parameters(), "lr": config.adv_lr or config.lr})
    optimizer = torch.optim.Adam(groups_params, weight_decay=config.weight_decay)
    group_dro = GroupDRO(data.n_groups, config.eta_q) if config.method == "group-dro" else None

    history: list[dict[str, Any]] = []
    weights_log: list[list[float]] = []
    valid_errors: list[torch.Tensor] = []
    valid_ratios: list[torch.Tensor] = []
    step_times: list[float] = []
    n_groups = data.n_groups
    # running per-group weight sums between two weights_log entries (carried across epochs)
    w_sum = torch.zeros(n_groups, dtype=torch.float64)
    w_cnt = torch.zeros(n_groups, dtype=torch.float64)
    start_epoch = 0
    cfg_dict = asdict(config)
    if checkpoint_dir is not None and latest_checkpoint(checkpoint_dir) is not None:
        path = latest_checkpoint(checkpoint_dir)
        # the configuration is compared before any weights are loaded; more epochs may be asked for
        state = load_checkpoint(path, players, optimizer, expected_config=cfg_dict, ignore=("epochs",))
        extra = state["extra"]
        start_epoch = int(state["step"])
        if start_epoch > config.epochs:
            raise QuintetError(f"checkpoint in {checkpoint_dir} already holds {start_epoch} epochs, more than the "
                               f"{config.epochs} asked for; ask for >= {start_epoch} epochs, use another folder "
                               "or --no-resume")
        if "weight_sums" not in extra:
            raise QuintetError(f"checkpoint in {checkpoint_dir} predates the saved weight sums and cannot be "
                               "resumed exactly; use another folder or --no-resume")
        history, weights_log, step_times = extra["history"], extra["weights"], extra["step_times"]
        w_sum = torch.tensor(extra["weight_sums"], dtype=torch.float64)
        w_cnt = torch.tensor(extra["weight_counts"], dtype=torch.float64)
        if group_dro is not None:
            group_dro.q = torch.tensor(extra["group_q"], dtype=torch.float64)
        tensors = load_tensors(Path(path) / "history.safetensors")
        valid_errors = list(tensors["valid_errors"]) if "valid_errors" in tensors else []
        valid_ratios = list(tensors["valid_ratios"]) if "valid_ratios" in tensors else []
        if log:
            log(f"resumed from {path} at epoch {start_epoch}")

    train = data.train
    n_batches = math.ceil(len(train) / config.batch_size)
    bar = progress_bar(config.epochs * n_batches, f"{config.task}/{config.method}", start_epoch * n_batches, progress)
    for epoch in range(start_epoch, config.epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed * 100003 + epoch))
        log_every = max(1, n_batches // 4)
        for b in range(n_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            if idx.numel() < 2:
                continue
            x, y, g = _trim(train.x[idx]), train.y[idx], train.g[idx]
            t0 = time.perf_counter()
            losses = F.cross_entropy(model(x), y, reduction="none")
            weights = None
            if config.method == "erm":
                loss = losses.mean()
            elif config.method == "cvar":
                loss = cvar_loss(losses, config.alpha)
            elif config.method == "group-dro":
                loss = group_dro.loss(losses, g)
            elif config.method == "group-uniform":
                loss = uniform_group_loss(losses, g, n_groups)
            else:
                r = adversary(x, y)
                if config.method == "ratio":
                    model_loss, adv_loss = ratio_dro_objectives(losses, r, config.tau)
                    weights = len(r) * torch.softmax(r.detach(), 0)
                else:
                    model_loss, adv_loss = self_normalized_objectives(losses, r, config.tau, config.beta)
                    weights = r.detach().exp()
                loss = model_loss + adv_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_times.append(time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.4f}", refresh=False)
            if weights is not None:
                w_sum += torch.zeros(n_groups, dtype=torch.float64).index_add(0, g, weights.double())
                w_cnt += torch.bincount(g, minlength=n_groups).double()
                if (b + 1) % log_every == 0:  # leftovers carry over into the next epoch
                    weights_log.append((w_sum / w_cnt.clamp_min(1)).tolist())
                    w_sum.zero_()
                    w_cnt.zero_()
        v_correct, v_ratio = evaluate(players, data.valid)
        t_correct, _ = evaluate(players, data.test)
        record = {"epoch": epoch + 1, "valid": _summary(v_correct, data.valid, n_groups),
                  "test": _summary(t_correct, data.test, n_groups)}
        if group_dro is not None:
            record["group_q"] = group_dro.q.tolist()
        if v_ratio is not None:
            lq = torch.log_softmax(v_ratio.double(), 0)
            record["valid_kl"] = float((lq.exp() * (lq + math.log(len(lq)))).sum())
            valid_ratios.append(v_ratio.float())
        valid_errors.append((~v_correct).float())
        history.append(record)
        if log:
            log(f"[{config.task}/{config.method}/seed {config.seed}] epoch {epoch + 1}: valid acc {record['valid']['acc']:.3f} "
                f"worst {record['valid']['worst']:.3f} | test acc {record['test']['acc']:.3f} worst {record['test']['worst']:.3f}")
        if checkpoint_dir is not None:
            target = Path(checkpoint_dir) / f"checkpoint-{epoch + 1:08d}"
            tensors = {"valid_errors": torch.stack(valid_errors)}
            if valid_ratios:
                tensors["valid_ratios"] = torch.stack(valid_ratios)
            save_tensors(target / "history.safetensors", tensors)
            extra = {"history": history, "weights": weights_log, "step_times": step_times,
                     "weight_sums": w_sum.tolist(), "weight_counts": w_cnt.tolist()}
            if group_dro is not None:
                extra["group_q"] = group_dro.q.tolist()
            save_checkpoint(checkpoint_dir, players, step=epoch + 1, config=cfg_dict, optimizer=optimizer, extra=extra)

    bar.close()
    selection = select_all(history, torch.stack(valid_errors),
                           torch.stack(valid_ratios) if valid_ratios else None)
    return {"config": cfg_dict, "history": history, "selection": selection, "weights": weights_log,
            "group_names": data.group_names,
            "seconds_per_step": float(torch.tensor(step_times).median()) if step_times else None,
            "valid_errors": torch.stack(valid_errors),
            "valid_ratios": torch.stack(valid_ratios) if valid_ratios else None}


def select_all(history: list[dict], valid_errors: torch.Tensor, valid_ratios: torch.Tensor | None) -> dict[str, dict]:
    """The epoch chosen by each rule in ``RULES`` and its test metrics."""
    valid_acc = torch.tensor([h["valid"]["acc"] for h in history])
    valid_worst = torch.tensor([h["valid"]["worst"] for h in history])
    chosen = {
        "average": int(valid_acc.argmax()),
        "oracle": int(valid_worst.argmax()),
        "minmax": minmax_select(valid_errors, valid_ratios)[0],
    }
    return {rule: {"epoch": history[i]["epoch"], "test_acc": history[i]["test"]["acc"],
                   "test_worst": history[i]["test"]["worst"], "test_groups": history[i]["test"]["groups"]}
            for rule, i in ((r, chosen[r]) for r in RULES)}


def train(config: TrainConfig, checkpoint_dir: str | Path | None = None, data_dir: str | Path | None = None,
          log: Callable[[str], None] | None = None, data: TaskData | None = None,
          progress: bool = False) -> dict[str, Any]:
    """Load the task named in ``config`` (unless ``data`` is given) and train on it (with a progress
    bar on stderr when ``progress``)."""
    config = config.validate()
    if data is None:
        data = load_task(config.task, data_dir, n_train=config.n_train, text_model=config.text_model)
    return train_on(data, config, checkpoint_dir, log, progress=progress)
