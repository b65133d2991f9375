"""Relaxed Bellman-Ford on a node-weighted grid (8-neighbourhood) and its traceback.

From the top-left cell to the bottom-right cell; entering cell ``v`` costs ``cost[v]``.  Every
sweep relaxes the 8 edge directions in turn: ``if dist[u] + cost[v] < dist[v]: dist[v] = ...,
pred[v] = direction``, with the condition relaxed to ``sigmoid(beta (dist[v] - dist[u] - cost[v]))``
and both assignments blended.  The traceback moves a unit of mass from the target along the
relaxed predecessors and collects the visited cells with the probabilistic t-conorm
``path + trace - path * trace`` (Petersen et al., NeurIPS 2021, Sec. 4).

:func:`relaxed_shortest_path` is the fast implementation;
:func:`quintet.algovision.programs.shortest_path_program` is the same algorithm written in the
program language (it runs on ``algovision`` too).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from quintet.core.errors import QuintetError

__all__ = ["DIRECTIONS", "UNREACHED", "relaxed_shortest_path", "neighbour", "transport",
           "dijkstra", "default_iterations"]

#: (dy, dx) from a cell to its predecessor, one per direction of the last axis of ``pred``.
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
#: Distance of cells not reached yet, and of the border outside the grid.
UNREACHED = 1e6


def default_iterations(height: int, width: int) -> int:
    return height + width


def _check_cost(cost: torch.Tensor) -> None:
    if not isinstance(cost, torch.Tensor) or cost.dim() != 3 or not cost.is_floating_point():
        raise QuintetError(f"cost must be a float tensor (batch, height, width), got "
                           f"{getattr(cost, 'shape', type(cost).__name__)}")
    if not torch.isfinite(cost).all():
        raise QuintetError("cost contains NaN or infinite values")


def neighbour(dist: torch.Tensor, k: int, fill: float = UNREACHED) -> torch.Tensor:
    """``dist[..., v + DIRECTIONS[k]]`` for every cell ``v`` of ``dist: (batch, H, W)`` (``fill``
    outside the grid).  Its adjoint is ``neighbour(g, 7 - k, 0)``: the directions are symmetric."""
    dy, dx = DIRECTIONS[k]
    h, w = dist.shape[-2:]
    padded = F.pad(dist, (1, 1, 1, 1), value=fill)
    return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def transport(trace: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Move the mass ``trace: (batch, H, W)`` of every cell but the start to its predecessors
    ``pred: (batch, H, W, 8)`` (weights per direction); mass leaving the grid is dropped."""
    flow = (trace * _keep(trace)).unsqueeze(-1) * pred
    out = 0.0
    for k in range(8):
        out = out + neighbour(flow[..., k], 7 - k, 0.0)
    return out


def _keep(like: torch.Tensor) -> torch.Tensor:
    """1 everywhere but the start cell, where the traced mass stops."""
    keep = torch.ones(like.shape[-2:], dtype=like.dtype, device=like.device)
    keep[0, 0] = 0.0
    return keep


def _start(cost: torch.Tensor) -> torch.Tensor:
    dist = torch.full(cost.shape[-2:], UNREACHED, dtype=cost.dtype, device=cost.device)
    dist[0, 0] = 0.0
    return dist


def _target(cost: torch.Tensor) -> torch.Tensor:
    trace = torch.zeros(cost.shape[-2:], dtype=cost.dtype, device=cost.device)
    trace[-1, -1] = 1.0
    return trace


def relaxed_shortest_path(cost: torch.Tensor, beta: float, iterations: int | None = None,
                          steps: int | None = None, hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed shortest path from the top-left to the bottom-right cell.

    ``cost: (batch, H, W)``; returns ``path: (batch, H, W)`` (probability that a cell is on the
    path) and ``dist: (batch, H, W)`` (relaxed distance from the start, start cost excluded).
    ``iterations`` Bellman-Ford sweeps (default ``H + W``), ``steps`` traceback steps (default
    ``iterations``).  ``hard=True`` runs the discrete algorithm and stops sweeping once no
    distance changes.  Forward and backward are hand-written loops over small tensors (no
    autograd graph); the values and gradients equal those of
    :func:`~quintet.algovision.programs.shortest_path_program`.
    """
    _check_cost(cost)
    if not beta > 0:
        raise QuintetError(f"beta must be > 0, got {beta}")
    iterations = default_iterations(*cost.shape[-2:]) if iterations is None else iterations
    steps = iterations if steps is None else steps
    if iterations < 1 or steps < 1:
        raise QuintetError(f"iterations and steps must be >= 1, got {iterations} and {steps}")
    return _ShortestPath.apply(cost, float(beta), iterations, steps, bool(hard))


class _ShortestPath(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost, beta, iterations, steps, hard):
        dist = _start(cost).expand_as(cost).contiguous()
        pred = cost.new_zeros(*cost.shape, 8)
        onehot = torch.eye(8, dtype=cost.dtype, device=cost.device)
        dists, probs = [], []
        for _ in range(iterations):
            before = dist
            for k in range(8):
                candidate = neighbour(dist, k) + cost
                p = torch.sigmoid((dist - candidate) * beta)
                if hard:
                    p = (p > 0.5).to(cost.dtype)
                dists.append(dist)
                probs.append(p)
                dist = torch.lerp(dist, candidate, p)
                pred.lerp_(onehot[k], p.unsqueeze(-1))
            if hard and torch.equal(before, dist):
                break
        keep = _keep(cost)
        trace = _target(cost).expand_as(cost)
        path = torch.zeros_like(cost)
        traces, paths = [], []
        for _ in range(steps):
            traces.append(trace)
            paths.append(path)
            path = path + trace - path * trace
            trace = transport(trace, pred)
        ctx.save_for_backward(cost, pred, keep)
        ctx.dists, ctx.probs, ctx.traces, ctx.paths = dists, probs, traces, paths
        ctx.beta, ctx.hard = beta, hard
        return path, dist

    @staticmethod
    def backward(ctx, g_path, g_dist):
        cost, pred, keep = ctx.saved_tensors
        beta, hard = ctx.beta, ctx.hard
        g_path = torch.zeros_like(cost) if g_path is None else g_path
        g_dist = torch.zeros_like(cost) if g_dist is None else g_dist.clone()
        # traceback, in reverse: path' = path + trace - path trace; trace' = transport(trace keep, pred)
        g_trace = torch.zeros_like(cost)
        g_pred = torch.zeros_like(pred)
        for trace, path in zip(reversed(ctx.traces), reversed(ctx.paths)):
            moved = torch.stack([neighbour(g_trace, k, 0.0) for k in range(8)], -1)
            g_pred += (trace * keep).unsqueeze(-1) * moved
            g_trace = (moved * pred).sum(-1) * keep + g_path * (1 - path)
            g_path = g_path * (1 - trace)
        # Bellman-Ford, in reverse.  pred only scales and gains p e_k, so the gradient reaching update j
        # is g_pred * prod_{l > j} (1 - p_l) and <g_pred, pred_j> follows a forward recursion.
        dot, dots = torch.zeros_like(cost), []
        for j, p in enumerate(ctx.probs):
            dots.append(dot)
            dot = torch.lerp(dot, g_pred[..., j % 8], p)
        g_cost = torch.zeros_like(cost)
        survive = torch.ones_like(cost)
        for j in range(len(ctx.probs) - 1, -1, -1):
            k, p, dist = j % 8, ctx.probs[j], ctx.dists[j]
            candidate = neighbour(dist, k) + cost
            g_p = g_dist * (candidate - dist) + survive * (g_pred[..., k] - dots[j])
            survive = survive * (1 - p)
            g_x = torch.zeros_like(p) if hard else g_p * p * (1 - p) * beta
            g_candidate = p * g_dist - g_x
            g_cost += g_candidate
            g_dist = (1 - p) * g_dist + g_x + neighbour(g_candidate, 7 - k, 0.0)
        return g_cost, None, None, None, None


def dijkstra(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact shortest paths (top-left to bottom-right, 8-neighbourhood, entering a cell costs its
    value) for ``cost: (batch, H, W)`` > 0.  Returns 0/1 ``paths (batch, H, W)`` and the path
    costs ``(batch,)`` including the start cell."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra as sp_dijkstra

    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 3 or not np.isfinite(cost).all() or (cost <= 0).any():
        raise QuintetError(f"dijkstra needs finite positive costs of shape (batch, H, W), got {cost.shape}")
    b, h, w = cost.shape
    ys, xs = np.mgrid[0:h, 0:w]
    src, dst = [], []
    for dy, dx in DIRECTIONS:
        ok = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        src.append(((ys + dy) * w + xs + dx)[ok])
        dst.append((ys * w + xs)[ok])
    src, dst = np.concatenate(src), np.concatenate(dst)
    paths = np.zeros((b, h * w), dtype=np.float32)
    totals = np.zeros(b)
    for i in range(b):
        graph = csr_matrix((cost[i].reshape(-1)[dst], (src, dst)), shape=(h * w, h * w))
        _, pred = sp_dijkstra(graph, indices=0, return_predecessors=True)
        node = h * w - 1
        while node >= 0:
            paths[i, node] = 1.0
            node = pred[node]
        totals[i] = float((cost[i].reshape(-1) * paths[i]).sum())
    return paths.reshape(b, h, w), totals
