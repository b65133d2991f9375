"""Procedural terrain maps: a stand-in for the Warcraft 12x12 shortest-path data (which is not
available here).  Each map is a grid of terrain types laid out in smooth blobs; each type has a
hidden cost and a texture (colour, pattern, noise) drawn into a ``tile x tile`` pixel square.
The shortest path from the top-left to the bottom-right cell comes from Dijkstra on the costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quintet.algovision.shortest_path import dijkstra
from quintet.core.errors import QuintetError

__all__ = ["TERRAINS", "TerrainMaps", "make_terrain"]

#: (name, hidden cost, RGB colour in [0, 1], pattern); patterns: 0 flat, 1 stripes, 2 dots, 3 waves, 4 checks
TERRAINS = (
    ("road", 0.8, (0.62, 0.58, 0.52), 0),
    ("grass", 1.2, (0.35, 0.62, 0.30), 1),
    ("forest", 3.0, (0.16, 0.38, 0.18), 2),
    ("hills", 5.3, (0.55, 0.45, 0.30), 4),
    ("water", 9.2, (0.22, 0.36, 0.70), 3),
)


@dataclass
class TerrainMaps:
    """``images (N, 3, size*tile, size*tile)`` float32, ``costs (N, size, size)``, ``types``,
    optimal ``paths (N, size, size)`` in {0, 1} and their ``path_costs (N,)``."""

    images: torch.Tensor
    costs: torch.Tensor
    types: torch.Tensor
    paths: torch.Tensor
    path_costs: torch.Tensor

    def __len__(self) -> int:
        return len(self.costs)

    def batch(self, index: torch.Tensor) -> "TerrainMaps":
        return TerrainMaps(*(t[index] for t in (self.images, self.costs, self.types, self.paths, self.path_costs)))


def _patterns(tile: int) -> np.ndarray:
    """``(5, tile, tile)`` texture patterns in [-1, 1]."""
    y, x = np.mgrid[0:tile, 0:tile] / tile
    return np.stack([np.zeros_like(x), np.sign(np.sin(2 * np.pi * 3 * (x + y))),
                     np.where((np.sin(2 * np.pi * 2 * x) * np.sin(2 * np.pi * 2 * y)) > 0.3, 1.0, -0.3),
                     np.sin(2 * np.pi * (2 * x + 0.5 * np.sin(2 * np.pi * y))),
                     np.where((np.floor(4 * x) + np.floor(4 * y)) % 2 == 0, 1.0, -1.0)])


def _layout(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth blobs of terrain types: argmax of upsampled low-resolution noise per type."""
    coarse = max(2, size // 4)
    logits = torch.from_numpy(rng.normal(size=(count, len(TERRAINS), coarse, coarse)).astype(np.float32))
    logits[:, 0] -= 0.6  # roads are rarer
    fine = torch.nn.functional.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
    fine = fine + 0.35 * torch.from_numpy(rng.normal(size=fine.shape).astype(np.float32))
    return fine.argmax(1).numpy()


def make_terrain(count: int, size: int = 12, tile: int = 8, seed: int = 0) -> TerrainMaps:
    """``count`` maps of ``size x size`` cells drawn ``tile`` pixels wide (deterministic in ``seed``)."""
    if count < 1 or size < 2 or tile < 2:
        raise QuintetError(f"make_terrain needs count >= 1, size >= 2, tile >= 2; got {count}, {size}, {tile}")
    rng = np.random.default_rng(seed)
    types = _layout(count, size, rng)
    cost_table = np.array([t[1] for t in TERRAINS], dtype=np.float32)
    colours = np.array([t[2] for t in TERRAINS], dtype=np.float32)
    pattern_of = np.array([t[3] for t in TERRAINS])
    patterns = _patterns(tile).astype(np.float32)
    costs = cost_table[types]
    # pixels: colour of the type, its pattern, per-cell brightness jitter and pixel noise
    tex = patterns[pattern_of[types]]                                        # (N, S, S, t, t)
    jitter = rng.normal(0.0, 0.05, size=types.shape + (1, 1)).astype(np.float32)
    pix = colours[types][..., None, None] * (1.0 + 0.25 * tex + jitter)[:, :, :, None]  # (N, S, S, 3, t, t)
    pix = pix + rng.normal(0.0, 0.04, size=pix.shape).astype(np.float32)
    images = pix.transpose(0, 3, 1, 4, 2, 5).reshape(count, 3, size * tile, size * tile).clip(0.0, 1.0)
    paths, totals = dijkstra(costs)
    return TerrainMaps(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(costs),
                       torch.from_numpy(types.astype(np.int64)), torch.from_numpy(paths),
                       torch.from_numpy(totals.astype(np.float32)))
