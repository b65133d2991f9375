"""Shortest-path supervision on procedural terrain (Petersen et al., NeurIPS 2021, Sec. 5.2 uses
Warcraft maps): a CNN predicts the 12x12 cost map from the image and is trained

* ``relaxed``: only through the relaxed Bellman-Ford path (MSE to the true path);
* ``regression``: directly on the true costs (MSE) - an upper reference that sees the costs;
* ``blackbox``: through a hard Dijkstra solver with the blackbox differentiation of
  Vlastelica et al. (ICLR 2020): ``grad = -(y(w) - y(w + lambda g)) / lambda``, Hamming loss.

Metrics on held-out maps, all from Dijkstra on the predicted costs: exact path match, the share
of optimal paths (ties are common) and the ratio of the true cost of the predicted path to the
optimal cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from quintet.algovision.shortest_path import dijkstra, relaxed_shortest_path
from quintet.algovision.terrain import TerrainMaps, make_terrain
from quintet.algovision.training import fit
from quintet.core.distributed import current
from quintet.core.errors import QuintetError, check_choice

__all__ = ["PathConfig", "CostCNN", "train_path", "evaluate_paths", "PATH_METHODS", "blackbox_shortest_path"]

PATH_METHODS = ("relaxed", "regression", "blackbox")


@dataclass(frozen=True)
class PathConfig:
    method: str = "relaxed"
    size: int = 12
    tile: int = 8
    train_maps: int = 1000
    test_maps: int = 200
    beta: float = 10.0
    blackbox_lambda: float = 20.0
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    eval_every: int = 100
    seed: int = 0

    def check(self) -> None:
        check_choice("path method", self.method, PATH_METHODS)
        if self.steps < 1 or self.batch_size < 1 or self.train_maps < 1 or self.test_maps < 1:
            raise QuintetError(f"steps, batch_size, train_maps and test_maps must be >= 1; got {self}")
        if not self.beta > 0 or not self.blackbox_lambda > 0:
            raise QuintetError(f"beta and blackbox_lambda must be > 0; got {self.beta}, {self.blackbox_lambda}")


class CostCNN(nn.Module):
    """Image ``(batch, 3, S*tile, S*tile)`` -> positive costs ``(batch, S, S)``: a tile-wise patch
    embedding, a 3x3 context convolution and a 1x1 head with softplus."""

    def __init__(self, tile: int = 8, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, tile, stride=tile), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(images).squeeze(1)) + 0.05


class _Blackbox(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost, lam):
        path = torch.from_numpy(dijkstra(cost.detach().double().numpy())[0]).to(cost)
        ctx.save_for_backward(cost, path)
        ctx.lam = lam
        return path

    @staticmethod
    def backward(ctx, grad):
        cost, path = ctx.saved_tensors
        shifted = (cost + ctx.lam * grad).clamp_min(1e-3)  # Dijkstra needs positive costs
        other = torch.from_numpy(dijkstra(shifted.detach().double().numpy())[0]).to(cost)
        return -(path - other) / ctx.lam, None


def blackbox_shortest_path(cost: torch.Tensor, lam: float) -> torch.Tensor:
    """Hard shortest path ``(batch, H, W)`` whose backward pass is the blackbox-solver gradient."""
    return _Blackbox.apply(cost, lam)


def path_loss(cfg: PathConfig, cost: torch.Tensor, maps: TerrainMaps) -> torch.Tensor:
    if cfg.method == "relaxed":
        path, _ = relaxed_shortest_path(cost, cfg.beta)
        return ((path - maps.paths) ** 2).mean()
    if cfg.method == "regression":
        return ((cost - maps.costs) ** 2).mean()
    # the solver is blind to the scale of the costs; without a fixed scale they collapse to the floor
    path = blackbox_shortest_path(cost / cost.mean((1, 2), keepdim=True), cfg.blackbox_lambda)
    return (path * (1 - maps.paths) + (1 - path) * maps.paths).sum((1, 2)).mean()  # Hamming distance per map


@torch.no_grad()
def evaluate_paths(model: nn.Module, maps: TerrainMaps) -> dict:
    """Exact path match, optimal paths (the predicted path costs no more than the optimum; terrain
    costs take few values, so several paths are often optimal) and the mean cost ratio (true cost
    of the predicted path / optimal cost)."""
    predicted, _ = dijkstra(model(maps.images).double().numpy())
    predicted = torch.from_numpy(predicted)
    exact = (predicted == maps.paths).flatten(1).all(1).float().mean()
    ratio = (predicted * maps.costs).sum((1, 2)) / maps.path_costs
    return {"exact_match": float(exact), "optimal": float((ratio < 1 + 1e-5).float().mean()),
            "cost_ratio": float(ratio.mean())}


def train_path(cfg: PathConfig, out: Path | None = None, time_limit: float | None = None,
               log: Callable[[str], None] = print, data: tuple[TerrainMaps, TerrainMaps] | None = None) -> dict:
    """Train :class:`CostCNN` with ``cfg.method``; returns test metrics and the loop's record."""
    cfg.check()
    train, test = data or (make_terrain(cfg.train_maps, cfg.size, cfg.tile, seed=cfg.seed),
                           make_terrain(cfg.test_maps, cfg.size, cfg.tile, seed=cfg.seed + 1))
    torch.manual_seed(cfg.seed)
    model = CostCNN(cfg.tile)

    dist = current()
    dist.check_batch(cfg.batch_size)

    def step_loss(gen):
        rows = dist.shard(torch.randint(len(train), (cfg.batch_size,), generator=gen))
        maps = train.batch(rows)
        return path_loss(cfg, model(maps.images), maps) * dist.weight(cfg.batch_size)

    record = fit(model, step_loss, steps=cfg.steps, lr=cfg.lr, seed=cfg.seed, config=asdict(cfg), out=out,
                 evaluate=lambda: evaluate_paths(model, test.batch(torch.arange(min(len(test), 100)))),
                 eval_every=cfg.eval_every, time_limit=time_limit, log=log)
    model.eval()
    return {**evaluate_paths(model, test), **record, "model": model}
