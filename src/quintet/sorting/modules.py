"""``nn.Module`` wrappers holding the configuration of :func:`diffsort`."""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError
from quintet.sorting.functional import check_values, diffsort
from quintet.sorting.networks import get_network
from quintet.sorting.relaxations import resolve_relaxation

__all__ = ["DiffSortNet"]


class DiffSortNet(torch.nn.Module):
    """Drop-in for ``diffsort.DiffSortNet`` (same signature, same outputs): sorts ``(batch, size)``
    and returns ``(sorted (batch, size), P (batch, size, size))``.

    ``padding`` defaults to ``"reference"`` so that results equal the reference package's; pass
    ``padding="sentinel"`` for the layout that sorts every ``n`` (see :mod:`.networks`).
    ``device`` is accepted for compatibility; the layout follows the input's device.
    """

    def __init__(self, sorting_network_type: str, size: int, device: str = "cpu", steepness: float = 10.0,
                 art_lambda: float = 0.25, interpolation_type: str | None = None, distribution: str = "cauchy",
                 padding: str = "reference"):
        super().__init__()
        if interpolation_type is not None:
            if distribution not in (None, "cauchy", interpolation_type):
                raise QuintetError(
                    f"distribution={distribution!r} and interpolation_type={interpolation_type!r} disagree; "
                    "interpolation_type is a deprecated alias of distribution")
            distribution = interpolation_type
        self.sorting_network_type = sorting_network_type
        self.size = int(size)
        self.steepness = float(steepness)
        self.art_lambda = float(art_lambda)
        self.distribution = resolve_relaxation(distribution)
        self.padding = padding
        self.sorting_network = get_network(sorting_network_type, self.size, padding)

    def forward(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = check_values(vectors, "vectors")
        if vectors.dim() != 2 or x.shape[1] != self.size:
            raise QuintetError(f"expected vectors of shape (batch, {self.size}), got {tuple(vectors.shape)}")
        return diffsort(x, network=self.sorting_network_type, relaxation=self.distribution,
                        steepness=self.steepness, art_lambda=self.art_lambda, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.sorting_network_type}, size={self.size}, steepness={self.steepness}, "
                f"distribution={self.distribution}, padding={self.padding}")
