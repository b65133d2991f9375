"""Soft ``Min``, ``Max``, ``ArgMin``, ``ArgMax`` callables for lambdas inside programs
(``Let('m', lambda a, b: Min(beta=4)(a, b))``); see :mod:`quintet.algovision.relaxations`."""

from __future__ import annotations

import torch

from quintet.algovision import relaxations as R
from quintet.algovision.conditions import check_beta
from quintet.core.errors import QuintetError

__all__ = ["Min", "Max", "ArgMin", "ArgMax"]


class _Soft(torch.nn.Module):
    fn = staticmethod(R.soft_min)

    def __init__(self, beta: float):
        super().__init__()
        self.beta = check_beta(beta, type(self).__name__)
        if self.beta is None:
            raise QuintetError(f"{type(self).__name__}: beta is required (it is not taken from the algorithm)")

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if not tensors:
            raise QuintetError(f"{type(self).__name__}: needs at least one tensor")
        return type(self).fn(*tensors, beta=self.beta)


class Min(_Soft):
    """Element-wise soft minimum of equally shaped tensors."""

    fn = staticmethod(R.soft_min)


class Max(_Soft):
    """Element-wise soft maximum of equally shaped tensors."""

    fn = staticmethod(R.soft_max)


class ArgMin(_Soft):
    """Soft arg-minimum: weights over a new last axis of size ``len(tensors)``."""

    fn = staticmethod(R.soft_argmin)


class ArgMax(_Soft):
    """Soft arg-maximum: weights over a new last axis of size ``len(tensors)``."""

    fn = staticmethod(R.soft_argmax)
