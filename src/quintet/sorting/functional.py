"""Differentiable sorting networks, functional API (Petersen et al., ICML 2021 / ICLR 2022).

``diffsort(x)`` runs a relaxed sorting network on ``x (batch, n)`` and returns the softly sorted
values and the relaxed permutation matrix ``P (batch, n, n)`` with the reference package's
convention ``sorted[b, j] = sum_i x[b, i] * P[b, i, j]`` (row = input, column = sorted position).
Every conditional swap of wires ``(a, b)`` (ICML 2021 Eq. 2) computes
``alpha = f(beta * (x_b - x_a))`` and ``min = alpha x_a + (1 - alpha) x_b``,
``max = (1 - alpha) x_a + alpha x_b``; ``P`` is the product of the per-layer mixing matrices
(ICML 2021 Sec. 3.1), built here column-pair by column-pair (see :mod:`._engine`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.sorting._engine import PairPlan, bitonic_permutation, pairs_permutation
from quintet.sorting.networks import KEEP, SOFT, SWAP, SortingNetwork, get_network, prune_to_outputs
from quintet.sorting.relaxations import RELAXATIONS, resolve_relaxation

__all__ = ["diffsort", "soft_sort", "soft_rank", "diff_topk", "check_values", "check_steepness", "check_art_lambda",
           "prepare"]


def check_values(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, bool]:
    """Validate ``x`` (``(n,)`` or ``(batch, n)``, floating, finite, ``n >= 2``); return it as 2-D
    and whether it was 1-D."""
    if not isinstance(x, torch.Tensor):
        raise QuintetError(f"{name} must be a torch.Tensor of shape (batch, n), got {type(x).__name__}")
    if not x.is_floating_point():
        raise QuintetError(f"{name} must be a floating tensor (float32 or float64), got {x.dtype}")
    if x.dim() not in (1, 2):
        raise QuintetError(f"{name} must have shape (n,) or (batch, n), got {tuple(x.shape)}")
    squeeze = x.dim() == 1
    x2 = x.unsqueeze(0) if squeeze else x
    if x2.shape[-1] < 2:
        raise QuintetError(f"sorting needs n >= 2 values per row, got n = {x2.shape[-1]}")
    if x2.numel() and not bool(torch.isfinite(x2.detach()).all()):
        raise QuintetError(f"{name} contains NaN or inf; differentiable sorting needs finite values")
    return x2, squeeze


def check_steepness(steepness: float | torch.Tensor) -> float | torch.Tensor:
    """A positive finite steepness: a number (returned as ``float``) or a one-element tensor (returned
    as a 0-d tensor, so that a learnable steepness keeps its gradient)."""
    if isinstance(steepness, torch.Tensor):
        if steepness.numel() != 1 or not steepness.is_floating_point():
            raise QuintetError(f"a tensor steepness must hold one floating value, got shape "
                               f"{tuple(steepness.shape)} and dtype {steepness.dtype}")
        value = float(steepness.detach())
        if not math.isfinite(value) or value <= 0:
            raise QuintetError(f"steepness must be a positive finite number, got {value!r}")
        return steepness.reshape(())
    try:
        beta = float(steepness)
    except (TypeError, ValueError):
        raise QuintetError(f"steepness must be a positive number, got {steepness!r}") from None
    if not math.isfinite(beta) or beta <= 0:
        raise QuintetError(f"steepness must be a positive finite number, got {steepness!r}")
    return beta


def check_art_lambda(art_lambda: float) -> float:
    """A finite ``art_lambda >= 0`` (the exponent of ART, ICML 2021 Sec. 3.2) as ``float``."""
    try:
        lam = float(art_lambda)
    except (TypeError, ValueError):
        raise QuintetError(f"art_lambda must be a number >= 0, got {art_lambda!r}") from None
    if not math.isfinite(lam) or lam < 0:
        raise QuintetError(f"art_lambda must be a finite number >= 0, got {art_lambda!r}")
    return lam


# ---------------------------------------------------------------- per-device index plans
_PLANS: dict[tuple[int, str], object] = {}


def _structured_plan(net: SortingNetwork, device: torch.device):
    key = (id(net), "S" + str(device))
    if key not in _PLANS:
        layers = []
        for layer, (block, m) in zip(net.layers, net.stages):
            g = 2 ** (block + 1)
            shape = (net.size // g, g // (2 * m), m)
            desc = torch.as_tensor(layer.descending.reshape(shape), device=device)
            keep = torch.as_tensor((layer.mode == KEEP).reshape(shape), device=device)
            swap = torch.as_tensor((layer.mode == SWAP).reshape(shape), device=device)
            layers.append((shape, desc, keep if keep.any() else None, swap if swap.any() else None))
        _PLANS[key] = (net, layers)
    return _PLANS[key][1]


def _pair_plan(net: SortingNetwork, device: torch.device):
    key = (id(net), "P" + str(device))
    if key not in _PLANS:
        spec, soft = [], []
        for layer in net.layers:
            a, b, desc = layer.select(SOFT)
            sa, sb, _ = layer.select(SWAP)
            spec.append((a, b, sa, sb))
            soft.append((torch.as_tensor(a, device=device), torch.as_tensor(b, device=device),
                         torch.as_tensor(desc, device=device)))
        _PLANS[key] = (net, (PairPlan(net.size, spec, device), soft))
    return _PLANS[key][1]


def prepare(net: SortingNetwork, device: torch.device) -> None:
    """Build the index tensors ``net`` needs on ``device`` now rather than at the first call."""
    if net.stages:
        _structured_plan(net, device)
    else:
        _pair_plan(net, device)


def _mixing_weight(xa, xb, desc, relax, beta, lam):
    """``u`` = the weight moved across the comparator: ``1 - alpha`` ascending, ``alpha`` descending."""
    alpha = RELAXATIONS[relax](xb - xa, beta, lam)
    return torch.where(desc, alpha, 1.0 - alpha)


def _run_structured(z, net, relax, beta, lam):
    """Bitonic on ``N = 2^K`` wires with views.  ``z (B, R, N)``: row 0 holds the values, which
    decide the weights; every row is mixed with them (rows 1.. = the identity give ``P`` directly,
    the fast way for small ``N``).  Returns the final ``z`` and the per-layer weights ``u``."""
    batch, rows = z.shape[:2]
    us = []
    for (_block, m), (shape, desc, keep, swap) in zip(net.stages, _structured_plan(net, z.device)):
        q, s, _ = shape
        view = z.view(batch, rows, q, s, 2, m)
        za, zb = view[..., 0, :], view[..., 1, :]
        u = _mixing_weight(za[:, 0], zb[:, 0], desc, relax, beta, lam)
        if keep is not None:
            u = u.masked_fill(keep, 0.0)
        if swap is not None:
            u = u.masked_fill(swap, 1.0)
        w = u.unsqueeze(1)
        d = za - zb
        z = torch.stack([za - w * d, zb + w * d], dim=-2).reshape(batch, rows, net.size)
        us.append(u.reshape(batch, net.size // 2))
    return z, us


def _run_pairs(x, net, relax, beta, lam):
    plan, soft = _pair_plan(net, x.device)
    us = []
    for (a, b, desc), (_, _, sa, sb, _) in zip(soft, plan.layers):
        if len(a):
            xa, xb = x.index_select(1, a), x.index_select(1, b)
            u = _mixing_weight(xa, xb, desc, relax, beta, lam)
            d = xa - xb
            x = x.index_copy(1, a, xa - u * d).index_copy(1, b, xb + u * d)
        else:
            u = x.new_zeros(x.shape[0], 0)
        if len(sa):
            x = x.index_copy(1, sa, x.index_select(1, sb)).index_copy(1, sb, x.index_select(1, sa))
        us.append(u)
    return x, us, plan


#: bitonic networks on at most this many wires build ``P`` by mixing the rows of the identity
#: along with the values (plain autograd); beyond, the column-pair engine of :mod:`._engine` is faster
DIRECT_MAX_SIZE = 8


def _forward(x, net, relax, beta, lam, want_matrix: bool):
    padded = torch.cat([x.new_zeros(x.shape[0], net.pad), x], dim=1) if net.pad else x
    if net.stages:
        if want_matrix and net.size <= DIRECT_MAX_SIZE:
            eye = torch.eye(net.size, dtype=x.dtype, device=x.device).expand(x.shape[0], net.size, net.size)
            z, us = _run_structured(torch.cat([padded.unsqueeze(1), eye], dim=1), net, relax, beta, lam)
            return z[:, 0], us, z[:, 1:]
        z, us = _run_structured(padded.unsqueeze(1), net, relax, beta, lam)
        out = z[:, 0]
        mat = bitonic_permutation(net.size, us) if want_matrix else None
    else:
        out, us, plan = _run_pairs(padded, net, relax, beta, lam)
        mat = pairs_permutation(plan, us) if want_matrix else None
    return out, us, mat


def _setup(x, network, relaxation, steepness, art_lambda, padding):
    x2, squeeze = check_values(x)
    relax = resolve_relaxation(relaxation)
    beta = check_steepness(steepness)
    lam = check_art_lambda(art_lambda)
    net = get_network(network, x2.shape[1], padding)
    return x2, squeeze, relax, beta, lam, net


def diffsort(
    x: torch.Tensor,
    network: str = "bitonic",
    relaxation: str = "cauchy",
    steepness: float | torch.Tensor = 10.0,
    art_lambda: float = 0.25,
    descending: bool = False,
    padding: str = "sentinel",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed sorting network: ``x (batch, n)`` -> ``(sorted_x (batch, n), P (batch, n, n))``.

    ``sorted_x = einsum("bi,bij->bj", x, P)``; ``P[b, i, j]`` is the soft probability that input
    ``i`` lands at position ``j`` (ascending; ``descending=True`` reverses the positions).
    ``network``: ``odd_even`` or ``bitonic``; ``relaxation``: see :mod:`.relaxations`;
    ``steepness``: the inverse temperature beta, a number or a one-element tensor (a learnable
    ``nn.Parameter`` receives its gradient); ``art_lambda``: lambda of ``logistic_phi``;
    ``padding``: for bitonic with ``n`` not a power of two, ``sentinel`` (always sorts) or
    ``reference`` (diffsort 0.2.0's layout, see :mod:`.networks`).  A 1-D ``x`` gives 1-D / 2-D
    results; an empty batch gives empty results.  Works for float32/float64 on any device; no loop
    over the batch.  Differentiable twice (second derivatives through ``P`` included).
    """
    x2, squeeze, relax, beta, lam, net = _setup(x, network, relaxation, steepness, art_lambda, padding)
    out, _, mat = _forward(x2, net, relax, beta, lam, True)
    values, mat = out[:, net.pad:], mat[:, net.pad:, net.pad:]
    if descending:
        values, mat = values.flip(-1), mat.flip(-1)
    return (values[0], mat[0]) if squeeze else (values, mat)


def soft_sort(
    x: torch.Tensor,
    network: str = "bitonic",
    relaxation: str = "cauchy",
    steepness: float | torch.Tensor = 10.0,
    art_lambda: float = 0.25,
    descending: bool = False,
    padding: str = "sentinel",
) -> torch.Tensor:
    """Softly sorted values only, ``(batch, n)`` (like ``torchsort.soft_sort``); never builds
    ``P``, so it costs ``O(n log^2 n)`` (bitonic) time and memory per row."""
    x2, squeeze, relax, beta, lam, net = _setup(x, network, relaxation, steepness, art_lambda, padding)
    out, _, _ = _forward(x2, net, relax, beta, lam, False)
    values = out[:, net.pad:]
    values = values.flip(-1) if descending else values
    return values[0] if squeeze else values


def _apply_transposed(us, net, plan_vec: torch.Tensor) -> torch.Tensor:
    """``P @ c`` lazily: ``P = M_1 ... M_L`` with symmetric ``M_l``, so apply the layers to the
    column vector ``c (batch, N)`` in reverse order; ``O(N L)`` instead of ``O(N^2 L)``."""
    c = plan_vec
    batch = c.shape[0]
    if net.stages:
        for (block, m), u in zip(reversed(net.stages), reversed(us)):
            g = 2 ** (block + 1)
            q, s = net.size // g, g // (2 * m)
            view = c.view(batch, q, s, 2, m)
            ca, cb = view[..., 0, :], view[..., 1, :]
            uu = u.view(batch, q, s, m)
            d = ca - cb
            c = torch.stack([ca - uu * d, cb + uu * d], dim=-2).reshape(batch, net.size)
    else:
        plan, _ = _pair_plan(net, c.device)
        for (a, b, sa, sb, _), u in zip(reversed(plan.layers), reversed(us)):
            if len(sa):
                c = c.index_copy(1, sa, c.index_select(1, sb)).index_copy(1, sb, c.index_select(1, sa))
            if len(a):
                ca, cb = c.index_select(1, a), c.index_select(1, b)
                d = ca - cb
                c = c.index_copy(1, a, ca - u * d).index_copy(1, b, cb + u * d)
    return c


def soft_rank(
    x: torch.Tensor,
    network: str = "bitonic",
    relaxation: str = "cauchy",
    steepness: float | torch.Tensor = 10.0,
    art_lambda: float = 0.25,
    descending: bool = False,
    padding: str = "sentinel",
) -> torch.Tensor:
    """Soft ranks ``(batch, n)``, 1 = smallest (largest with ``descending``), as in
    ``torchsort.soft_rank``: ``rank_i = sum_j P[i, j] (j + 1)``, computed lazily as ``P @ c``."""
    x2, squeeze, relax, beta, lam, net = _setup(x, network, relaxation, steepness, art_lambda, padding)
    _, us, _ = _forward(x2, net, relax, beta, lam, False)
    positions = torch.arange(1, net.n + 1, dtype=x2.dtype, device=x2.device)
    if descending:
        positions = positions.flip(0)
    c = torch.cat([x2.new_zeros(net.pad), positions]).expand(x2.shape[0], net.size)
    ranks = _apply_transposed(us, net, c.contiguous())[:, net.pad:]
    return ranks[0] if squeeze else ranks


_TOPK_CACHE: dict[tuple[int, int], SortingNetwork] = {}


def diff_topk(
    x: torch.Tensor,
    k: int,
    network: str = "bitonic",
    relaxation: str = "cauchy",
    steepness: float | torch.Tensor = 10.0,
    art_lambda: float = 0.25,
    padding: str = "sentinel",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable top-k (Petersen et al., ICML 2022): ``(values (batch, k), P (batch, n, k))``,
    largest first like ``torch.topk``.  Only the comparators that can reach the top ``k`` output
    wires are run (:func:`.networks.prune_to_outputs`); the values and ``P[..., :k]`` equal
    those of the full network's ``descending=True`` result."""
    x2, squeeze, relax, beta, lam, full = _setup(x, network, relaxation, steepness, art_lambda, padding)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= full.n:
        raise QuintetError(f"k must be an integer in 1..{full.n}, got {k!r}")
    key = (id(full), int(k))
    if key not in _TOPK_CACHE:
        _TOPK_CACHE[key] = prune_to_outputs(full, np.arange(full.size - k, full.size))
    net = _TOPK_CACHE[key]
    out, _, mat = _forward(x2, net, relax, beta, lam, True)
    values = out[:, full.size - k:].flip(-1)
    mat = mat[:, full.pad:, full.size - k:].flip(-1)
    return (values[0], mat[0]) if squeeze else (values, mat)
