"""``nn.Module`` wrappers holding the configuration of :func:`diffsort`."""

from __future__ import annotations

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.sorting.functional import (
    check_art_lambda,
    check_steepness,
    check_values,
    diffsort,
    prepare,
)
from quintet.sorting.networks import get_network
from quintet.sorting.relaxations import resolve_relaxation

__all__ = ["DiffSortNet"]


class DiffSortNet(torch.nn.Module):
    """Drop-in for ``diffsort.DiffSortNet`` (same signature, same outputs): sorts ``(batch, size)``
    and returns ``(sorted (batch, size), P (batch, size, size))``.

    ``padding`` defaults to ``"reference"`` so that results equal the reference package's; pass
    ``padding="sentinel"`` for the layout that sorts every ``n`` (see :mod:`.networks`).
    ``steepness`` may be a tensor; an ``nn.Parameter`` is registered and learnt like any other.
    ``device``: the network's index tensors are built there at construction, as in the reference
    (an unknown or unavailable device is refused); unlike the reference, an input on another
    device is sorted on its own device instead of raising.
    """

    def __init__(self, sorting_network_type: str, size: int, device: str | torch.device = "cpu",
                 steepness: float | torch.Tensor = 10.0, art_lambda: float = 0.25,
                 interpolation_type: str | None = None, distribution: str = "cauchy", padding: str = "reference"):
        super().__init__()
        if interpolation_type is not None:
            if distribution not in (None, "cauchy", interpolation_type):
                raise QuintetError(
                    f"distribution={distribution!r} and interpolation_type={interpolation_type!r} disagree; "
                    "interpolation_type is a deprecated alias of distribution")
            distribution = interpolation_type
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise QuintetError(f"size must be an integer number of inputs, got {size!r}")
        self.sorting_network_type = sorting_network_type
        self.size = int(size)
        beta = check_steepness(steepness)
        self.steepness = steepness if isinstance(steepness, torch.nn.Parameter) else beta
        self.art_lambda = check_art_lambda(art_lambda)
        self.distribution = resolve_relaxation(distribution)
        self.padding = padding
        self.sorting_network = get_network(sorting_network_type, self.size, padding)
        self.device = _build_on(self.sorting_network, device)

    def forward(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = check_values(vectors, "vectors")
        if vectors.dim() != 2 or x.shape[1] != self.size:
            raise QuintetError(f"expected vectors of shape (batch, {self.size}), got {tuple(vectors.shape)}")
        return diffsort(x, network=self.sorting_network_type, relaxation=self.distribution,
                        steepness=self.steepness, art_lambda=self.art_lambda, padding=self.padding)

    def extra_repr(self) -> str:
        beta = self.steepness if isinstance(self.steepness, float) else "tensor"
        return (f"{self.sorting_network_type}, size={self.size}, steepness={beta}, "
                f"distribution={self.distribution}, padding={self.padding}, device={self.device}")


def _build_on(network, device: str | torch.device) -> torch.device:
    """Validate ``device`` and build the network's index tensors there."""
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, TypeError, AssertionError) as exc:
        raise QuintetError(f"device {device!r} is not available here ({str(exc).splitlines()[0]})") from None
    prepare(network, dev)
    return dev
