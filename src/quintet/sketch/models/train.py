"""Training loop for Vitruvion's models: AdamW with warmup and cosine decay, a tqdm bar with loss
and throughput, checkpoints every ``checkpoint_every`` steps, every ``checkpoint_seconds`` of
training and on Ctrl-C, and resume from the latest one. With a ``validate`` function the loop
measures validation bits every ``validate_every`` steps, stops after ``patience`` measures without
improvement and ends with the best weights (early stopping).

The loop is model-agnostic: it needs a model with ``loss(batch) -> (mean_nll, n_tokens)`` and a
``make_batch(step) -> dict`` that is a pure function of the step (so a resumed run sees the same
batches as an uninterrupted one).

Under ``accelerate launch`` (or ``torchrun``) the processes split every batch
(:mod:`quintet.core.distributed`): each builds the same global batch, keeps its rows of every
tensor, and scales its mean token loss by ``W n_r / N`` (``n_r`` its target tokens, ``N`` those of
the whole batch, ``W`` the number of processes), so that the averaged gradient is the gradient of
the mean over all ``N`` tokens, as in one process. Only the main process writes checkpoints and
shows the progress bar; every process resumes from the checkpoint the main process names.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError
from quintet.core.io import load_checkpoint
from quintet.sketch.models.checkpoint import save_model


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    #: also write a checkpoint when this many seconds of training passed since the last one
    checkpoint_seconds: float = 120.0
    #: with a ``validate`` function: measure every this many steps, stop after ``patience``
    #: measures without a new best
    validate_every: int = 100
    patience: int = 3
    seed: int = 0
    cpu: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise QuintetError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not self.lr > 0:
            raise QuintetError(f"learning rate must be > 0, got {self.lr}")


def shard_batch(batch: dict[str, torch.Tensor], dist: Dist) -> dict[str, torch.Tensor]:
    """This process's rows (dim 0) of every tensor of a global batch; refuses a batch with fewer
    rows than processes."""
    keys = list(batch)
    dist.check_batch(len(batch[keys[0]]))
    rows = dist.shard(*(batch[k] for k in keys))
    return dict(zip(keys, rows if len(keys) > 1 else (rows,)))


def _start_from_main(model: nn.Module, dist: Dist) -> None:
    """Copy the main process's parameters to every process (the models' buffers are constants of
    the grammar, identical everywhere)."""
    if dist.world == 1:
        return
    with torch.no_grad():
        for p in model.parameters():
            buffer = p.detach().to(dist.device)
            torch.distributed.broadcast(buffer, src=0)
            p.copy_(buffer.to(p.device))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup for ``cfg.warmup`` steps, then cosine decay to 10 % of ``cfg.lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def train(
    model: nn.Module,
    make_batch: Callable[[int], dict[str, torch.Tensor]],
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    description: str = "train",
    validate: Callable[[nn.Module], float] | None = None,
) -> dict:
    """Train ``model`` in place for ``cfg.steps`` steps; resume from ``out_dir``'s latest checkpoint.

    ``validate(model) -> bits`` (lower is better) turns on early stopping: the returned model holds
    the weights of the best measure. A checkpoint is written every ``cfg.checkpoint_every`` steps,
    whenever ``cfg.checkpoint_seconds`` passed since the last one, at the end and on Ctrl-C (then
    the interrupt propagates). Returns ``{"history": [[step, loss], ...], "validation": [[step,
    bits], ...], "best_step": k, "stopped_at": k, "seconds": s, "tokens_per_second": r,
    "resumed_from": k}``.
    """
    from tqdm.auto import tqdm

    dist = current()
    device = torch.device("cpu") if cfg.cpu else dist.device
    model.to(device)
    _start_from_main(model, dist)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    start, history, val_hist, best = 0, [], [], None
    resume = dist.latest_checkpoint(out_dir)
    if resume is not None:
        from quintet.sketch.models.checkpoint import read_config

        saved_kind = read_config(resume).get("kind")
        if saved_kind != model.config.kind:
            raise QuintetError(f"{out_dir} holds a {saved_kind!r} checkpoint; cannot resume a {model.config.kind!r} model")
        state = load_checkpoint(resume, model, opt, expected_config=model.config.to_dict())
        start, history = int(state["step"]), list(state["extra"].get("history", []))
        val_hist = list(state["extra"].get("validation", []))
        best = state["extra"].get("best")
    best_state = _load_best(out_dir, best)
    model.train()
    t0, tokens = time.perf_counter(), 0
    last_save = t0
    done = start

    def save() -> None:
        nonlocal last_save
        if out_dir is not None and dist.is_main:
            save_model(out_dir, model, step=done, optimizer=opt,
                       extra={"history": history, "validation": val_hist, "best": best, "train_config": asdict(cfg)})
            if best_state is not None and best is not None and best[0] == done:
                _save_best(out_dir, best_state)
            last_save = time.perf_counter()

    stopped = _patience_spent(val_hist, best, cfg.patience) if validate is not None else False
    bar = tqdm(range(start, cfg.steps), desc=description, disable=not cfg.progress or not dist.is_main,
               initial=start, total=cfg.steps, dynamic_ncols=True, leave=False)
    try:
        for step in bar:
            if stopped:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            batch = {k: v.to(device) for k, v in shard_batch(make_batch(step), dist).items()}
            mean, n = model.loss(batch)
            # this process's share of the mean over the global batch's target tokens
            total = int(dist.all_sum(n))
            loss = mean * (dist.world * n / max(total, 1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            dist.sync_gradients(model.parameters())
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            tokens += total
            value = float(dist.all_sum(loss.detach().cpu())) / dist.world  # the global batch's mean
            if not math.isfinite(value):
                raise QuintetError(f"training diverged at step {step} (loss {value}); lower the learning rate")
            history.append([step, round(value, 5)])
            rate = tokens / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{value:.3f}", tok_s=f"{rate:.0f}")
            done = step + 1
            if validate is not None and (done % cfg.validate_every == 0 or done == cfg.steps):
                # the main process's measure (identical on every process when ``validate`` sums its
                # shares with ``Dist.all_sum``), so that all processes stop at the same step
                bits = float(validate(model))
                bits = float(dist.all_sum(bits if dist.is_main else 0.0))
                model.train()
                val_hist.append([done, round(bits, 5)])
                if best is None or bits < best[1]:
                    best = [done, bits]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                stopped = _patience_spent(val_hist, best, cfg.patience)
            timed = time.perf_counter() - last_save >= cfg.checkpoint_seconds
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stopped or timed:
                save()
    except KeyboardInterrupt:
        if done > start:
            save()
        raise
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - t0
    return {
        "history": history,
        "validation": val_hist,
        "best_step": best[0] if best else done,
        "stopped_at": done,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        "resumed_from": start,
    }


def _patience_spent(val_hist: list, best, patience: int) -> bool:
    """True when the last ``patience`` measures came after the best one."""
    return best is not None and sum(1 for s, _ in val_hist if s > best[0]) >= patience


_BEST_FILE = "best.safetensors"


def _save_best(out_dir, state: dict) -> None:
    from safetensors.torch import save

    from quintet.core.io import atomic_write_bytes

    atomic_write_bytes(Path(out_dir) / _BEST_FILE, save({k: v.contiguous() for k, v in state.items()}))


def _load_best(out_dir, best) -> dict | None:
    """The best weights kept beside the checkpoints (early stopping), when there are any."""
    if out_dir is None or best is None or not (Path(out_dir) / _BEST_FILE).is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(Path(out_dir) / _BEST_FILE))


# ---- batches ---------------------------------------------------------------------------------


def _pick_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """A reproducible batch of indices for ``step`` (epoch-wise shuffles)."""
    import numpy as np

    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    if n < batch_size:
        return np.random.default_rng([seed, step]).integers(0, n, batch_size).tolist()
    return order[k * batch_size : (k + 1) * batch_size].tolist()


def constraint_batch(grammar, pvals: list[list[int]], cvals: list[list[int]], *, noise_std: float = 0.0,
                     noise_max: float = 0.15, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Primitive streams (coordinates perturbed when ``noise_std > 0``), reference mask and the
    constraint streams ``c_tok, c_coord, c_pos`` (B, T)."""
    from quintet.sketch.models.grammar import ConstraintGrammar
    from quintet.sketch.models.noise import perturb_bins
    from quintet.sketch.models.sample import primitive_batch

    b = primitive_batch(grammar, pvals)
    if noise_std > 0:
        b["val"] = perturb_bins(b["val"], grammar, noise_std, noise_max, generator)
    cg = ConstraintGrammar()
    T = max(len(c) for c in cvals)
    tok = torch.zeros(len(cvals), T, dtype=torch.long)
    coord, pos = torch.zeros_like(tok), torch.zeros_like(tok)
    for i, c in enumerate(cvals):
        cc, pp = cg.streams(c)
        tok[i, : len(c)], coord[i, : len(c)], pos[i, : len(c)] = torch.tensor(c), torch.tensor(cc), torch.tensor(pp)
    b.update(c_tok=tok, c_coord=coord, c_pos=pos)
    return b


def primitive_batches(grammar, pvals: list[list[int]], batch_size: int, seed: int = 0,
                      images: Callable[[list[int], int], torch.Tensor] | None = None) -> Callable[[int], dict]:
    """``step -> batch`` over ``pvals``; ``images(indices, step)`` adds an ``image`` tensor."""
    from quintet.sketch.models.sample import primitive_batch

    def make(step: int) -> dict:
        idx = _pick_indices(len(pvals), batch_size, step, seed)
        b = primitive_batch(grammar, [pvals[i] for i in idx])
        b.pop("ref_mask")
        if images is not None:
            b["image"] = images(idx, step)
        return b

    return make


def constraint_batches(grammar, pvals, cvals, batch_size: int, seed: int = 0, noise_std: float = 0.15,
                       noise_max: float = 0.15) -> Callable[[int], dict]:
    """``step -> batch`` for the constraint model, with fresh primitive noise at every step."""

    def make(step: int) -> dict:
        idx = _pick_indices(len(pvals), batch_size, step, seed)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return constraint_batch(grammar, [pvals[i] for i in idx], [cvals[i] for i in idx],
                                noise_std=noise_std, noise_max=noise_max, generator=gen)

    return make
