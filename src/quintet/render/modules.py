"""``nn.Module`` wrapper around :func:`quintet.render.render` holding a :class:`RenderSettings`."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch

from quintet.render.rasterize import RenderSettings, render


class GenDR(torch.nn.Module):
    """A configured generalized differentiable renderer.

    >>> renderer = GenDR(image_size=64, dist="uniform", tau=0.01, squared=False, tconorm="yager", p=2)
    >>> rgba = renderer(face_vertices, textures)  # (B, 4, 64, 64)
    """

    def __init__(self, **settings):
        super().__init__()
        self.settings = RenderSettings(**settings)

    def set_tau(self, tau: float) -> None:
        """Change τ (e.g. for annealing), re-validated."""
        self.settings = replace(self.settings, tau=float(tau))

    def forward(self, face_vertices: torch.Tensor, textures: Optional[torch.Tensor] = None) -> torch.Tensor:
        return render(face_vertices, self.settings, textures)

    def extra_repr(self) -> str:
        s = self.settings
        return f"dist={s.dist}, tau={s.tau:g}, squared={s.squared}, tconorm={s.tconorm}, p={s.p}, size={s.image_size}"
