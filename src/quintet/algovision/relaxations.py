"""Relaxed comparisons and soft extrema (Petersen et al., NeurIPS 2021, Sec. 3.1).

Perturbing ``a - b`` by logistic noise of scale ``1/beta`` turns a hard comparison into its
probability: ``P(a > b) = sigmoid(beta (a - b))``; equality becomes the logistic density
``sech^2(beta (a - b) / 2)`` (1 at ``a = b``).  Conjunction and disjunction of independent
conditions are the product and the probabilistic sum.  All functions broadcast.
"""

from __future__ import annotations

import torch

__all__ = ["soft_gt", "soft_lt", "soft_eq", "soft_neq", "soft_and", "soft_or", "soft_not",
           "soft_min", "soft_max", "soft_argmin", "soft_argmax"]


def soft_gt(a: torch.Tensor, b: torch.Tensor | float, beta: float) -> torch.Tensor:
    """``P(a > b) = sigmoid(beta (a - b))``."""
    return torch.sigmoid((a - b) * beta)


def soft_lt(a: torch.Tensor, b: torch.Tensor | float, beta: float) -> torch.Tensor:
    """``P(a < b) = sigmoid(beta (b - a))``."""
    return torch.sigmoid((b - a) * beta)


def soft_eq(a: torch.Tensor, b: torch.Tensor | float, beta: float) -> torch.Tensor:
    """``sech^2(beta (a - b) / 2)``: 1 where ``a = b``, decaying like the logistic density."""
    return 1.0 / torch.cosh((a - b) * beta / 2.0) ** 2


def soft_neq(a: torch.Tensor, b: torch.Tensor | float, beta: float) -> torch.Tensor:
    """``1 - soft_eq(a, b, beta)``."""
    return 1 - soft_eq(a, b, beta)


def soft_and(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Conjunction of independent events: ``p q``."""
    return p * q


def soft_or(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Disjunction of independent events: ``p + q - p q``."""
    return p + q - p * q


def soft_not(p: torch.Tensor) -> torch.Tensor:
    """``1 - p``."""
    return 1.0 - p


def _stack(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return tensors[0].unsqueeze(-1) if len(tensors) == 1 else torch.stack(tensors, -1)


def soft_argmin(*tensors: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise soft arg-minimum of equally shaped tensors: ``softmin(beta x)`` over a new
    last axis of size ``len(tensors)``."""
    return torch.softmax(-beta * _stack(tensors), -1)


def soft_argmax(*tensors: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise soft arg-maximum: ``softmax(beta x)`` over a new last axis."""
    return torch.softmax(beta * _stack(tensors), -1)


def soft_min(*tensors: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise soft minimum: the softmin-weighted mean of the tensors."""
    x = _stack(tensors)
    return (torch.softmax(-beta * x, -1) * x).sum(-1)


def soft_max(*tensors: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise soft maximum: the softmax-weighted mean of the tensors."""
    x = _stack(tensors)
    return (torch.softmax(beta * x, -1) * x).sum(-1)
