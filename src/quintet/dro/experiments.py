"""Training loop shared by every method: ERM, CVaR, Group DRO, uniform group weighting, ratio DRO, P-DRO.

One run trains one model on one task, evaluates it on the validation and test sets after every
epoch, checkpoints (resumable) and returns the per-epoch history plus the checkpoint each selection
rule picks. The ratio-DRO adversary and the model share one optimiser with two parameter groups:
one backward pass of ``model_loss + adversary_loss`` gives each player its own gradient (the
model's loss sees detached weights, the adversary's sees detached losses), so both are updated
simultaneously on the same batch (paper Section 3.4). Adam keeps its moments per parameter, so
two groups in one optimiser are the same as one optimiser per player.

Under ``accelerate launch`` / ``torchrun`` (:mod:`quintet.core.distributed`) every process draws the
same global batch, trims its padding, and runs the model (and the adversary) on its own rows. ERM
weights its shard's mean loss (``Dist.weight``); every other method needs the whole batch (the
best response of CVaR, chi-square and KL, the per-group losses of Group DRO, the batch softmax of the
ratio adversary), so the per-example losses and log-ratios are gathered differentiably
(:func:`gather_rows`) and each process computes the one-process objective of the global batch. The
gradients of a gathered tensor are summed over processes in the backward pass, and
``Dist.sync_gradients`` then averages the parameter gradients, so every process takes the step one
process takes on the combined batch (also through the ``q`` of the KL and chi-square responses).
Evaluation is split and gathered; only the main process writes checkpoints.

Two training recipes (``TrainConfig.recipe``):

* ``ours``: Adam, model ``lr``, adversary ``adv_lr``, constant rates, no clipping, mean losses;
  Group DRO with shuffled batches and the updated ``q``;
* ``authors`` (``pmichel31415/P-DRO``, ``pdro_main.py``): AdamW for both players at the same rate
  ``lr`` (``adv_lr`` unused), the model's rate decaying linearly to 0 over the run, both gradients
  clipped at norm ``clip_norm`` (10), the ratio model loss summed over the batch; Group DRO (and
  Topic CVaR) draws every example's group uniformly and weights the loss with the ``q`` from before
  the update.
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

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError, check_choice
from quintet.core.progress import progress_bar
from quintet.dro.generative import (
    GenerativeAdversary,
    LogNormalizer,
    base_lm,
    pdro_objectives,
    split_log_likelihoods,
)
from quintet.dro.models import Adversary, build_model
from quintet.dro.nonparametric import best_response, nonparametric_loss
from quintet.dro.objectives import (
    GroupDRO,
    check_alpha,
    check_tau,
    ratio_dro_objectives,
    self_normalized_objectives,
    uniform_group_loss,
)
from quintet.dro.selection import RULES, greedy_minmax_select, group_accuracies, minmax_select
from quintet.dro.tasks import (
    MODEL_SIZES,
    SST_SOURCES,
    TASKS,
    Split,
    TaskData,
    load_task,
    topic_groups,
    trim_padding,
)
from quintet.dro.wordpiece import BERT_VOCAB_SIZE, TOKENS, check_vocab_size

__all__ = ["METHODS", "RECIPES", "TrainConfig", "train", "train_on", "equal_group_order", "linear_decay",
           "gather_rows"]

METHODS = ("erm", "cvar", "chi2", "kl", "group-dro", "group-uniform", "topic-cvar", "ratio", "ratio-selfnorm", "pdro")
RATIO_METHODS = ("ratio", "ratio-selfnorm")
#: the methods whose adversary is a model re-weighting each batch (normalised within the batch)
ADVERSARY_METHODS = (*RATIO_METHODS, "pdro")
#: the seed of P-DRO's base language model (shared by every run seed)
BASE_LM_SEED = 0
#: P-DRO's settings (the generative adversary's language model and its normaliser window K), with
#: their ranges; recorded in a run's configuration only when the method is pdro
PDRO_RANGES = {"lm_embed_dim": (4, 4096), "lm_hidden": (4, 4096), "lm_epochs": (1, 1000), "norm_window": (1, 10000)}
#: the non-parametric adversaries and the TrainConfig field holding each one's ball size
NONPARAMETRIC = {"cvar": "alpha", "chi2": "rho", "kl": "kappa"}
RECIPES = ("ours", "authors")
#: the word-piece settings; recorded in a run's configuration only for word-piece inputs
WORDPIECE_FIELDS = ("tokens", "vocab_size", "tokenizer_path")


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
    rho: float = 1.0  # chi-square ball size
    kappa: float = 1.0  # KL ball size
    eta_q: float = 0.01  # Group DRO step size
    n_topics: int = 10  # Topic CVaR: LDA topics
    n_train: int | None = None
    text_model: str = "bilstm"
    weight_decay: float = 0.0
    recipe: str = "ours"
    clip_norm: float = 10.0  # authors' recipe: gradient-norm clip of each player
    sst_source: str = "pdro"
    model_size: str = "small"
    lm_embed_dim: int = 64  # pdro: word and label embedding size of the language model
    lm_hidden: int = 64  # pdro: LSTM units of the language model
    lm_epochs: int = 2  # pdro: maximum-likelihood epochs of the base language model p_0
    norm_window: int = 5  # pdro: batches K in the normaliser of the adversary's targets
    tokens: str = "words"  # biased-sst inputs: whitespace words or word pieces
    vocab_size: int = BERT_VOCAB_SIZE  # word pieces learnt on the training split: at most this many
    tokenizer_path: str | None = None  # word pieces from this Hugging Face tokenizer folder instead

    def recorded(self) -> dict[str, Any]:
        """The configuration a checkpoint is checked against: P-DRO's settings only for pdro, the
        word-piece settings only for word pieces (so runs on words keep their configuration)."""
        config = asdict(self)
        dropped = {*(PDRO_RANGES if self.method != "pdro" else ()),
                   *(WORDPIECE_FIELDS if self.tokens == "words" else ()),
                   *(("vocab_size",) if self.tokenizer_path is not None else ())}
        for name in dropped:
            del config[name]
        return config

    def validate(self) -> "TrainConfig":
        check_choice("task", self.task, TASKS)
        check_choice("method", self.method, METHODS)
        check_choice("recipe", self.recipe, RECIPES)
        check_choice("SST-2 source", self.sst_source, SST_SOURCES)
        check_choice("model size", self.model_size, MODEL_SIZES)
        check_choice("tokens", self.tokens, TOKENS)
        check_vocab_size(self.vocab_size)
        if self.tokens == "words" and self.tokenizer_path is not None:
            raise QuintetError(f"tokenizer_path {self.tokenizer_path} needs tokens='wordpiece', got tokens='words'")
        if self.tokens != "words" and self.task != "biased-sst":
            raise QuintetError(f"tokens={self.tokens!r} applies to the text task biased-sst, got task {self.task!r}")
        check_tau(self.tau)
        check_alpha(self.alpha)
        for name in ("rho", "kappa", "clip_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise QuintetError(f"{name} must be a positive number, got {value}")
        if not 2 <= self.n_topics <= 1000:
            raise QuintetError(f"n_topics must lie in [2, 1000], got {self.n_topics}")
        if self.method == "topic-cvar" and self.task != "biased-sst":
            raise QuintetError(f"topic-cvar needs a text task (biased-sst), got task {self.task!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise QuintetError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, (low, high) in PDRO_RANGES.items():
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= high):
                raise QuintetError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
        if self.method in ADVERSARY_METHODS and self.batch_size < 2:
            raise QuintetError(f"batch_size must be >= 2 for {self.method}: ratio weights are normalised within a "
                               f"batch, so a batch of {self.batch_size} weighs every example 1")
        if not self.lr > 0 or (self.adv_lr is not None and not self.adv_lr > 0):
            raise QuintetError(f"learning rates must be > 0, got lr={self.lr}, adv_lr={self.adv_lr}")
        if not self.eta_q > 0:
            raise QuintetError(f"eta_q must be > 0, got {self.eta_q}")
        return self


class Players(nn.Module):
    """The model and (for ratio DRO and P-DRO) the adversary, saved together in one checkpoint."""

    def __init__(self, model: nn.Module, adversary: nn.Module | None):
        super().__init__()
        self.model = model
        self.adversary = adversary


class _GatherRows(torch.autograd.Function):
    """``Dist.gather`` whose backward sums the global gradient over processes and keeps this
    process's rows (every process computes the same objective of the gathered batch, so the sum is
    ``world`` times its gradient, which ``Dist.sync_gradients`` divides by again)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, dist: Dist, n: int) -> torch.Tensor:
        ctx.dist, ctx.n = dist, n
        return dist.gather(local.detach(), n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        dist = ctx.dist
        total = grad.detach().contiguous().to(dist.device)
        torch.distributed.all_reduce(total)
        lo, hi = dist.bounds(ctx.n)
        return total[lo:hi].to(grad.device), None, None


def gather_rows(dist: Dist, local: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` rows of a global batch from every process's shard, differentiable in this
    process's rows; the identity in one process."""
    if dist.world == 1:
        return local
    return _GatherRows.apply(local, dist, n)


@torch.no_grad()
def evaluate(players: Players, split: Split, batch: int = 512, dist: Dist | None = None,
             with_adversary: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``correct: bool (N,)`` of the model, the adversary's log-ratios ``(N,)`` (None without an
    adversary or with ``with_adversary=False``) and the
    model's per-example losses ``(N,)``. Each chunk of ``batch`` rows is trimmed as in one process,
    split over the processes and gathered back in order (a chunk smaller than the number of
    processes is scored in full on each)."""
    dist = dist or Dist()
    players.eval()
    correct, ratios, losses = [], [], []
    for i in range(0, len(split), batch):
        x, y = trim_padding(split.x[i : i + batch]), split.y[i : i + batch]
        n = len(y)
        part = Dist() if n < dist.world else dist
        xs, ys = (x, y) if part.world == 1 else part.shard(x, y)
        logits = players.model(xs)
        correct.append(part.gather(logits.argmax(1) == ys, n))
        losses.append(part.gather(F.cross_entropy(logits, ys, reduction="none"), n))
        if players.adversary is not None and with_adversary:
            ratios.append(part.gather(players.adversary(xs, ys), n))
    players.train()
    return torch.cat(correct), (torch.cat(ratios) if ratios else None), torch.cat(losses)


def equal_group_order(groups: torch.Tensor, n_groups: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch of example indices (as many as examples) where each draw picks its group uniformly
    among the non-empty groups and then the next example of that group's shuffled stream (reshuffled
    when used up): the authors' Group DRO sampler (``MixtureSampler``, stop condition "total")."""
    present = [g for g in range(n_groups) if bool((groups == g).any())]
    choice = torch.tensor(present)[torch.randint(len(present), (len(groups),), generator=generator)]
    order = torch.empty(len(groups), dtype=torch.long)
    for g in present:
        members = torch.nonzero(groups == g).flatten()
        slots = torch.nonzero(choice == g).flatten()
        rounds = -(-len(slots) // len(members))
        stream = torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(max(rounds, 1))])
        order[slots] = stream[: len(slots)]
    return order


def linear_decay(lr: float, step: int, total: int) -> float:
    """The authors' schedule: ``lr * max((total - step) / total, 0)`` after ``step`` updates."""
    return lr * max((total - step) / total, 0.0)


def own_log_weights(method: str, config: "TrainConfig", ratios: torch.Tensor | None,
                    losses: torch.Tensor) -> torch.Tensor | None:
    """Validation log-weights ``log w`` of a method's own adversary, as the authors' selection pools
    them: the batch-normalised ratios (``ratio``), the raw ratios (``ratio-selfnorm``), the best
    response to the validation losses (CVaR, chi-square, KL); ``None`` for the others."""
    n = losses.numel()
    if method in ("ratio", "pdro"):
        return torch.log_softmax(ratios.double(), 0) + math.log(n)
    if method == "ratio-selfnorm":
        return ratios.double()
    if method in NONPARAMETRIC:
        q = best_response(method, losses.double(), getattr(config, NONPARAMETRIC[method]))
        return torch.log(q + 1e-40) + math.log(n)
    return None


def _summary(correct: torch.Tensor, split: Split, n_groups: int) -> dict[str, Any]:
    accs = group_accuracies(correct, split.g, n_groups)
    return {"acc": float(correct.double().mean()), "worst": float(accs[~accs.isnan()].min()),
            "groups": [float(a) for a in accs]}


def _topic_split_groups(data: TaskData, n_topics: int) -> dict[str, torch.Tensor]:
    """LDA topics of the train and valid sentences (cached on ``data``; topics use seed 0 so that
    every run of a task shares them)."""
    if data.text is None:
        raise QuintetError(f"topic-cvar needs the sentences of a text task; {data.name} has none")
    cache = data.__dict__.setdefault("_topic_cache", {})
    if n_topics not in cache:
        cache[n_topics] = topic_groups({k: data.text[k] for k in ("train", "valid")}, n_topics)
    return cache[n_topics]


def _generative_adversary(data: TaskData, config: TrainConfig, cache: Path | None, dist: Dist,
                          log: Callable[[str], None] | None) -> GenerativeAdversary:
    """P-DRO's adversary: the base language model ``p_0`` fitted on the training pairs (cached in
    ``cache``, written by the main process) and its trainable copy ``q_psi``. ``p_0`` depends on the
    data and its settings, not on the run's seed: every seed shares it, as the authors' runs share
    their one pre-trained ``p_0``."""
    if data.train.x.dtype != torch.long or data.train.x.dim() != 2 or data.model.vocab_size < 2:
        raise QuintetError(f"pdro models sentences with a language model; task {data.name!r} has no token ids "
                           "(use a text task such as biased-sst)")
    base = base_lm(data.train.x, data.train.y, data.model.vocab_size, data.n_classes, config.lm_embed_dim,
                   config.lm_hidden, config.lm_epochs, BASE_LM_SEED, cache, save=dist.is_main, log=log)
    return GenerativeAdversary(base)


def _make_optimizer(config: TrainConfig, model: nn.Module, adversary: nn.Module | None) -> torch.optim.Optimizer:
    authors = config.recipe == "authors"
    groups_params = [{"params": model.parameters(), "lr": config.lr}]
    if adversary is not None:  # the frozen base language model of pdro stays out
        groups_params.append({"params": [p for p in adversary.parameters() if p.requires_grad],
                              "lr": config.lr if authors else (config.adv_lr or config.lr)})
    if authors:
        return torch.optim.AdamW(groups_params, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups_params, weight_decay=config.weight_decay)


def _epoch_order(config: TrainConfig, train_groups: torch.Tensor, n_groups: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
    equal = config.method == "topic-cvar" or (config.method == "group-dro" and config.recipe == "authors")
    if equal:
        return equal_group_order(train_groups, n_groups, generator)
    return torch.randperm(len(train_groups), generator=generator)


def train_on(data: TaskData, config: TrainConfig, checkpoint_dir: str | Path | None = None,
             log: Callable[[str], None] | None = None, progress: bool = False,
             base_lm_dir: str | Path | None = None) -> dict[str, Any]:
    """Train ``config.method`` on ``data``; resume from ``checkpoint_dir`` when it holds one.

    For ``ratio`` the model and the adversary play the game of paper Section 3 (Eq. 7), both
    updated on every batch; ``pdro`` plays the game of Michel et al. (2021) against a generative
    adversary (:mod:`quintet.dro.generative`), its base language model fitted first (or loaded from
    ``base_lm_dir``, default ``checkpoint_dir/base-lm``, where it is cached); after training each
    selection rule of Section 4.3 picks a checkpoint.

    Returns ``{"config", "history": [per-epoch dict], "selection": {rule: {...}},
    "weights": [[mean adversary weight per group] per logged interval], "group_names",
    "seconds_per_step", "valid_errors": (epochs, N_valid), "valid_ratios": (epochs, N_valid) or None,
    "valid_log_weights": (epochs, N_valid) of the method's own adversary or None}``.
    """
    from quintet.core.io import (
        load_checkpoint,
        load_tensors,
        save_checkpoint,
        save_tensors,
    )
    from quintet.core.seed import seed_everything

    config = config.validate()
    dist = current()
    dist.check_batch(min(config.batch_size, len(data.train)))
    log = dist.main_only(log) if log else None
    seed_everything(config.seed)
    model = build_model(data.model)
    adversary = Adversary(build_model(data.model)) if config.method in RATIO_METHODS else None
    normalizer, train_log_p0 = None, None
    if config.method == "pdro":
        base_dir = base_lm_dir or (Path(checkpoint_dir) / "base-lm" if checkpoint_dir is not None else None)
        adversary = _generative_adversary(data, config, base_dir, dist, log)
        normalizer = LogNormalizer(config.norm_window)
        train_log_p0 = split_log_likelihoods(adversary.base, data.train.x, data.train.y)
    players = Players(model, adversary)
    dist.broadcast_parameters(players)
    optimizer = _make_optimizer(config, model, adversary)
    authors = config.recipe == "authors"
    reduction = "sum" if authors else "mean"
    n_groups = data.n_groups
    train_groups, valid_topics = data.train.g, None
    if config.method == "topic-cvar":
        topics = _topic_split_groups(data, config.n_topics)
        train_groups, valid_topics = topics["train"], topics["valid"]
    group_dro = None
    if config.method in ("group-dro", "topic-cvar"):
        variant = "authors" if authors or config.method == "topic-cvar" else "ours"
        group_dro = GroupDRO(config.n_topics if config.method == "topic-cvar" else n_groups, config.eta_q, variant)

    history: list[dict[str, Any]] = []
    weights_log: list[list[float]] = []
    stored: dict[str, list[torch.Tensor]] = {"valid_errors": [], "valid_ratios": [], "valid_log_weights": []}
    step_times: list[float] = []
    # running per-group weight sums between two weights_log entries (carried across epochs)
    w_sum = torch.zeros(n_groups, dtype=torch.float64)
    w_cnt = torch.zeros(n_groups, dtype=torch.float64)
    start_epoch = 0
    cfg_dict = config.recorded()
    path = dist.latest_checkpoint(checkpoint_dir)
    if path is not None:
        # the configuration is compared before any weights are loaded; more epochs may be asked for
        state = load_checkpoint(path, players, optimizer, expected_config=cfg_dict, ignore=("epochs",))
        extra = state["extra"]
        start_epoch = int(state["step"])
        if start_epoch > config.epochs:
            raise QuintetError(f"checkpoint in {checkpoint_dir} already holds {start_epoch} epochs, more than the "
                               f"{config.epochs} asked for; ask for >= {start_epoch} epochs, use another folder "
                               "or --no-resume")
        if authors and int(state["config"].get("epochs", config.epochs)) != config.epochs:
            raise QuintetError(f"checkpoint in {checkpoint_dir} was trained for {state['config']['epochs']} epochs under "
                               f"the authors' recipe, whose rate decays over the whole run; resume with --epochs "
                               f"{state['config']['epochs']}, use another folder or --no-resume")
        if "weight_sums" not in extra:
            raise QuintetError(f"checkpoint in {checkpoint_dir} predates the saved weight sums and cannot be "
                               "resumed exactly; use another folder or --no-resume")
        history, weights_log, step_times = extra["history"], extra["weights"], extra["step_times"]
        w_sum = torch.tensor(extra["weight_sums"], dtype=torch.float64)
        w_cnt = torch.tensor(extra["weight_counts"], dtype=torch.float64)
        if group_dro is not None:
            group_dro.q = torch.tensor(extra["group_q"], dtype=torch.float64)
        if normalizer is not None:
            normalizer = LogNormalizer(config.norm_window, extra["log_normalizer"])
        tensors = load_tensors(Path(path) / "history.safetensors")
        stored = {k: list(tensors[k]) if k in tensors else [] for k in stored}
        if log:
            log(f"resumed from {path} at epoch {start_epoch}")

    train = data.train
    n_batches = math.ceil(len(train) / config.batch_size)
    total_steps = config.epochs * n_batches
    bar = progress_bar(total_steps, f"{config.task}/{config.method}", start_epoch * n_batches, progress and dist.is_main)
    for epoch in range(start_epoch, config.epochs):
        order = _epoch_order(config, train_groups, group_dro.n_groups if group_dro else n_groups, epoch)
        log_every = max(1, n_batches // 4)
        for b in range(n_batches):
            if authors:  # the rate of this update: the schedule has taken epoch * n_batches + b steps
                optimizer.param_groups[0]["lr"] = linear_decay(config.lr, epoch * n_batches + b, total_steps)
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            if idx.numel() < max(2, dist.world):
                continue
            n = idx.numel()
            x, y, g = trim_padding(train.x[idx]), train.y[idx], train.g[idx]  # the global batch, trimmed
            t0 = time.perf_counter()
            xs, ys = (x, y) if dist.world == 1 else dist.shard(x, y)  # this process's rows
            local_losses = F.cross_entropy(model(xs), ys, reduction="none")
            # every method but ERM needs the losses of the whole batch (gathered differentiably)
            losses = local_losses if config.method == "erm" else gather_rows(dist, local_losses, n)
            weights = None
            if config.method == "erm":
                loss = local_losses.mean() * dist.weight(n)
            elif config.method in NONPARAMETRIC:
                loss = nonparametric_loss(config.method, losses, getattr(config, NONPARAMETRIC[config.method]))
            elif group_dro is not None:
                loss = group_dro.loss(losses, train_groups[idx])
            elif config.method == "group-uniform":
                loss = uniform_group_loss(losses, g, n_groups)
            else:
                known = () if train_log_p0 is None else (dist.shard(train_log_p0[idx]),)  # pdro: log p_0
                r = gather_rows(dist, adversary(xs, ys, *known), n)
                if config.method == "ratio":
                    model_loss, adv_loss = ratio_dro_objectives(losses, r, config.tau, reduction)
                    weights = len(r) * torch.softmax(r.detach(), 0)
                elif normalizer is not None:
                    log_z = normalizer.update(float(torch.logsumexp(losses.detach().double() / config.tau, 0)))
                    model_loss, adv_loss = pdro_objectives(losses, r, config.tau, log_z, reduction)
                    weights = len(r) * torch.softmax(r.detach(), 0)
                else:
                    model_loss, adv_loss = self_normalized_objectives(losses, r, config.tau, config.beta, reduction)
                    weights = r.detach().exp()
                loss = model_loss + adv_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            dist.sync_gradients(players.parameters())
            if authors:
                for player in (model, adversary):
                    if player is not None:
                        torch.nn.utils.clip_grad_norm_(player.parameters(), config.clip_norm)
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
        v_correct, v_ratio, v_losses = evaluate(players, data.valid, dist=dist)
        t_correct, _, _ = evaluate(players, data.test, dist=dist, with_adversary=False)  # test ratios go unused
        record = {"epoch": epoch + 1, "valid": _summary(v_correct, data.valid, n_groups),
                  "test": _summary(t_correct, data.test, n_groups)}
        if group_dro is not None:
            record["group_q"] = group_dro.q.tolist()
        if valid_topics is not None:
            topic_accs = group_accuracies(v_correct, valid_topics, config.n_topics)
            record["valid_topic_worst"] = float(topic_accs[~topic_accs.isnan()].min())
        if v_ratio is not None:
            lq = torch.log_softmax(v_ratio.double(), 0)
            record["valid_kl"] = float((lq.exp() * (lq + math.log(len(lq)))).sum())
            stored["valid_ratios"].append(v_ratio.float())
        own = own_log_weights(config.method, config, v_ratio, v_losses)
        if own is not None:
            stored["valid_log_weights"].append(own.float())
        stored["valid_errors"].append((~v_correct).float())
        history.append(record)
        if log:
            log(f"[{config.task}/{config.method}/seed {config.seed}] epoch {epoch + 1}: valid acc {record['valid']['acc']:.3f} "
                f"worst {record['valid']['worst']:.3f} | test acc {record['test']['acc']:.3f} worst {record['test']['worst']:.3f}")
        if checkpoint_dir is not None and dist.is_main:
            target = Path(checkpoint_dir) / f"checkpoint-{epoch + 1:08d}"
            save_tensors(target / "history.safetensors", {k: torch.stack(v) for k, v in stored.items() if v})
            extra = {"history": history, "weights": weights_log, "step_times": step_times,
                     "weight_sums": w_sum.tolist(), "weight_counts": w_cnt.tolist()}
            if group_dro is not None:
                extra["group_q"] = group_dro.q.tolist()
            if normalizer is not None:
                extra["log_normalizer"] = normalizer.history
            save_checkpoint(checkpoint_dir, players, step=epoch + 1, config=cfg_dict, optimizer=optimizer, extra=extra)

    bar.close()
    tensors = {k: (torch.stack(v) if v else None) for k, v in stored.items()}
    selection = select_all(history, tensors["valid_errors"], tensors["valid_ratios"], tensors["valid_log_weights"])
    return {"config": cfg_dict, "history": history, "selection": selection, "weights": weights_log,
            "group_names": data.group_names,
            "seconds_per_step": float(torch.tensor(step_times).median()) if step_times else None, **tensors}


def selected(history: list[dict], index: int) -> dict[str, Any]:
    """The test metrics of the checkpoint at ``index``."""
    h = history[index]
    return {"epoch": h["epoch"], "test_acc": h["test"]["acc"], "test_worst": h["test"]["worst"],
            "test_groups": h["test"]["groups"]}


def select_all(history: list[dict], valid_errors: torch.Tensor, valid_ratios: torch.Tensor | None,
               valid_log_weights: torch.Tensor | None = None) -> dict[str, dict]:
    """The epoch chosen by each rule in ``RULES`` and its test metrics.

    ``minmax`` pools the run's own ratio adversaries (none: the average rule); ``greedy-minmax`` is
    the authors' in-training rule over the method's own adversaries (``valid_log_weights``; uniform
    only when ``None``), and for Topic CVaR the greedy best worst-topic validation accuracy.
    """
    valid_acc = torch.tensor([h["valid"]["acc"] for h in history])
    valid_worst = torch.tensor([h["valid"]["worst"] for h in history])
    if "valid_topic_worst" in history[0]:
        greedy = int(torch.tensor([h["valid_topic_worst"] for h in history]).argmax())
    else:
        greedy = greedy_minmax_select(valid_errors, valid_log_weights)
    chosen = {
        "average": int(valid_acc.argmax()),
        "oracle": int(valid_worst.argmax()),
        "minmax": minmax_select(valid_errors, valid_ratios)[0],
        "greedy-minmax": greedy,
    }
    return {rule: selected(history, chosen[rule]) for rule in RULES}


def train(config: TrainConfig, checkpoint_dir: str | Path | None = None, data_dir: str | Path | None = None,
          log: Callable[[str], None] | None = None, data: TaskData | None = None,
          progress: bool = False) -> dict[str, Any]:
    """Load the task named in ``config`` (unless ``data`` is given) and train on it (with a progress
    bar on stderr when ``progress``)."""
    config = config.validate()
    if data is None:
        data = load_task(config.task, data_dir, n_train=config.n_train, text_model=config.text_model,
                         sst_source=config.sst_source, model_size=config.model_size, tokens=config.tokens,
                         vocab_size=config.vocab_size, tokenizer_path=config.tokenizer_path)
    return train_on(data, config, checkpoint_dir, log, progress=progress)
