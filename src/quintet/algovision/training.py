"""The training loop shared by the three supervision tasks: Adam, periodic evaluation,
safetensors checkpoints and exact resumption (each step draws its batch from a generator seeded
by ``(seed, step)``, so a resumed run sees the same batches as an uninterrupted one).

Under ``accelerate launch`` every process draws the same global batch; a task's loss keeps the
process's rows (:meth:`~quintet.core.distributed.Dist.shard`) weighted by
:meth:`~quintet.core.distributed.Dist.weight`, and :func:`fit` averages the gradients, writes
checkpoints and logs on the main process only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from quintet.core.distributed import current
from quintet.core.io import load_checkpoint, save_checkpoint

__all__ = ["fit", "batch_generator"]


def batch_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def fit(model: torch.nn.Module, loss_fn: Callable[[torch.Generator], torch.Tensor], *, steps: int, lr: float,
        seed: int, config: dict, evaluate: Callable[[], dict] | None = None, eval_every: int = 100,
        out: Path | None = None, checkpoint_every: int = 100, time_limit: float | None = None,
        log: Callable[[str], None] = print) -> dict:
    """Minimise ``loss_fn(generator)`` for ``steps`` Adam steps (or until ``time_limit`` seconds).

    With ``out``, checkpoints go to ``out/checkpoints`` and a run resumes from the latest one (a run
    written with another configuration, other than ``steps``, is refused).
    Returns ``{"steps", "seconds", "curve"}``; ``curve`` holds the loss and ``evaluate()`` results.
    """
    dist = current()
    log = dist.main_only(log)
    dist.broadcast_parameters(model)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    ckpt = out / "checkpoints" if out is not None else None
    step, curve = 0, []
    resume_from = dist.latest_checkpoint(ckpt)
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optim, expected_config=config, ignore=("steps", "eval_every"))
        step, curve = state["step"], state["extra"].get("curve", [])
        log(f"resumed from step {step}")
    start, losses = time.perf_counter(), []
    while step < steps:
        loss = loss_fn(batch_generator(seed, step))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        dist.sync_gradients(model.parameters())
        optim.step()
        dist.average_buffers(model)  # batch-norm statistics of the shards
        losses.append(float(dist.all_sum(loss.detach())) / dist.world)
        step += 1
        out_of_time = time_limit is not None and dist.any(time.perf_counter() - start > time_limit)
        if evaluate is not None and (step % eval_every == 0 or step == steps or out_of_time):
            model.eval()
            with torch.no_grad():
                metrics = evaluate()
            model.train()
            curve.append({"step": step, "loss": float(np.mean(losses[-eval_every:])), **metrics})
            log(f"step {step}: loss {curve[-1]['loss']:.4f} " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        if ckpt is not None and dist.is_main and (step % checkpoint_every == 0 or step == steps or out_of_time):
            save_checkpoint(ckpt, model, step=step, config=config, optimizer=optim, extra={"curve": curve})
        if out_of_time:
            log(f"time limit reached at step {step}")
            break
    return {"steps": step, "seconds": round(time.perf_counter() - start, 1), "curve": curve}
