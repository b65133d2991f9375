"""Training steps: ERM, MLDG, memory without meta-learning, and the Pin-the-Memory episode.

Pin the Memory (Kim et al. 2022, Sec. 3.5, Alg. 1), as the authors' released code runs it:

1. split the source domains at random into meta-train and meta-test;
2. **meta-train**: forward with θ, reading the memory ``M`` (detached) and writing a new memory
   from the batch (differentiable, for the divergence and classification losses); backward;
3. **inner step** (first order): ``θ' = θ − α·g`` with ``g`` the meta-train gradient taken as a
   constant, ``α = lr / 4``; the θ' network keeps its own batch-norm buffers (a copy taken here), as
   the authors' separate θ' networks do, so the deployed running statistics are updated by
   meta-train batches only;
4. **meta-test memory**: starting again from ``M``, write with θ' from the meta-train batch, the
   encoder frozen (only the write network receives gradient);
5. **meta-test**: forward the meta-test batch with θ' reading that memory (no write); backward —
   the gradients of both losses add up in ``θ.grad``; one SGD step;
6. **persistent memory update**: from ``M``, write with the new θ (eval mode, no gradient) from
   the meta-train batch and store.

MLDG is the same episode without the memory; "memory" is steps 2 and 6 on all source domains.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.func import functional_call

from quintet.core.distributed import Dist
from quintet.segmentation.losses import LossWeights, total_loss
from quintet.segmentation.memory import class_sums, l2_normalize, momentum_update
from quintet.segmentation.models import SegmentationNet

Batch = tuple[torch.Tensor, torch.Tensor]


def split_domains(n: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """A random non-empty partition of ``range(n)`` into (meta-train, meta-test), ``n >= 2``."""
    if n < 2:
        raise ValueError(f"meta-learning needs at least 2 source domains, got {n}")
    perm = rng.permutation(n)
    cut = int(rng.integers(1, n))
    return sorted(perm[:cut].tolist()), sorted(perm[cut:].tolist())


def _cat(batches: Sequence[Batch]) -> Batch:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def inner_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's buffers for the θ' forwards: their train-mode batch-norm updates
    (from the meta-test batch, too) must not reach the deployed running statistics."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def inner_params(model: torch.nn.Module, alpha: float) -> dict[str, torch.Tensor]:
    """First-order inner step ``θ' = θ − α·grad`` (gradient detached), as a name -> tensor dict
    whose entries keep the graph to θ (so ∂θ'/∂θ = I)."""
    return {name: (p - alpha * p.grad.detach()) if p.grad is not None else p
            for name, p in model.named_parameters()}


@torch.no_grad()
def persistent_update(model: SegmentationNet, x: torch.Tensor, y: torch.Tensor) -> None:
    """Write the batch into the stored memory with the current weights (eval mode, no gradient)."""
    was = model.training
    model.eval()
    out = model(x, y, write=True)
    model.memory.store(out["new_memory"])
    model.train(was)


def _value(loss: torch.Tensor, dist: Dist | None) -> float:
    """The loss of the global batch: the average over processes of their shares (see
    :func:`total_loss`); the loss itself in one process."""
    if dist is None or dist.world == 1:
        return float(loss.detach())
    return float(dist.all_sum(loss.detach().double().cpu())) / dist.world


def _sync(model: torch.nn.Module, dist: Dist | None) -> None:
    if dist is not None:
        dist.sync_gradients(model.parameters())


def erm_step(model: SegmentationNet, opt: torch.optim.Optimizer, batches: Sequence[Batch],
             weights: LossWeights, dist: Dist | None = None) -> dict[str, float]:
    """Aggregate all source domains in one batch; seg + aux loss (+ memory losses if present).

    The ERM baseline (and, with a memory, the memory-only ablation). Each batch is
    ``(images float (B, 3, H, W), labels int64 (B, H, W))``; returns the loss terms as floats.
    With ``dist`` on several processes each batch holds this process's rows of the domain's global
    batch: the losses are its shares of the global pixel means, the gradients are averaged before
    the step and the memory is written from the whole batch (``model.memory.reduce``).
    """
    x, y = _cat(batches)
    opt.zero_grad(set_to_none=True)
    write = model.memory is not None
    out = model(x, y, write=write)
    loss, parts = total_loss(out, y, weights, model.memory.classifier if write else None, dist)
    loss.backward()
    _sync(model, dist)
    opt.step()
    if write:
        persistent_update(model, x, y)
    parts["total"] = _value(loss, dist)
    return parts


def meta_step(model: SegmentationNet, opt: torch.optim.Optimizer, batches: Sequence[Batch],
              weights: LossWeights, alpha: float, rng: np.random.Generator, dist: Dist | None = None
              ) -> dict[str, float]:
    """One meta-learning episode (Sec. 3.5, Alg. 1): MLDG without memory, Pin the Memory with it
    (see the module doc). ``batches``: one ``(images float (B, 3, H, W), labels int64 (B, H, W))``
    per source domain; returns the loss terms as floats.

    With ``dist`` on several processes (``rng`` drawing the same split on all of them) each batch
    holds this process's rows. The meta-train gradient is averaged before the inner step, so θ' is
    the same on every process; the inner step is first order (the gradient enters θ' as a
    constant), so a plain average suffices there. The meta-test gradient is averaged after its
    backward (the meta-train part, already equal everywhere, averages to itself). Memory writes
    sum their class statistics over processes differentiably (``model.memory.reduce``)."""
    tr, te = split_domains(len(batches), rng)
    x_tr, y_tr = _cat([batches[i] for i in tr])
    x_te, y_te = _cat([batches[i] for i in te])
    use_mem = model.memory is not None
    opt.zero_grad(set_to_none=True)

    # meta-train with θ (reads M, writes a differentiable new memory for the write losses)
    out = model(x_tr, y_tr, write=use_mem)
    loss_tr, parts = total_loss(out, y_tr, weights, model.memory.classifier if use_mem else None, dist)
    loss_tr.backward()
    _sync(model, dist)
    params, buffers = inner_params(model, alpha), inner_buffers(model)

    # meta-test memory: M written from meta-train with θ', encoder frozen
    kwargs: dict = {}
    if use_mem:
        mem_t = model.memory.slots.detach().clone()
        with torch.no_grad():
            feat = functional_call(model, (params, buffers), (x_tr,), {"encode_only": True})["features"]
        mem_state = (_sub(params, "memory."), _sub(buffers, "memory."))
        kwargs["memory"] = functional_call(model.memory, mem_state, (feat, y_tr, mem_t))

    out_te = functional_call(model, (params, buffers), (x_te,), kwargs)
    loss_te, parts_te = total_loss(out_te, y_te, weights, None, dist)
    loss_te.backward()
    _sync(model, dist)
    opt.step()
    if use_mem:
        persistent_update(model, x_tr, y_tr)
    parts = {f"tr_{k}": v for k, v in parts.items()} | {f"te_{k}": v for k, v in parts_te.items()}
    parts["total"] = _value(loss_tr.detach() + loss_te.detach(), dist)
    return parts


@torch.no_grad()
def initialise_memory(model: SegmentationNet, batches: Sequence[Batch]) -> None:
    """Slots from class-wise means of the (normalised) ASPP features over ``batches`` (eval mode),
    as the authors initialise the memory before training."""
    was = model.training
    model.eval()
    k = model.num_classes
    device = model.memory.slots.device
    sums = torch.zeros(k, model.cfg.aspp_dim, device=device)
    weights = torch.zeros(k, device=device)
    for x, y in batches:
        feat = l2_normalize(model(x, encode_only=True)["features"], dim=1)
        s, w = class_sums(feat, y, k)
        sums += s
        weights += w
    model.memory.initialise(sums, weights)
    model.train(was)


__all__ = ["erm_step", "initialise_memory", "inner_buffers", "inner_params", "meta_step", "momentum_update", "persistent_update",
           "split_domains"]
