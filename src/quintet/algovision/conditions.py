"""Relaxed conditions of the program language (Petersen et al., NeurIPS 2021, Sec. 3.1).

``GT('a', 'b')`` is ``P(a > b)`` under logistic noise of scale ``1/beta``; operands are variable
names, lambdas over variables, or constants.  ``c1 & c2`` and ``c1 | c2`` combine conditions as
independent events.  ``beta=None`` takes the enclosing algorithm's inverse temperature.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from quintet.algovision import relaxations as R
from quintet.algovision.scope import Bound, Env, describe, is_function, reader
from quintet.core.errors import QuintetError

__all__ = ["Condition", "Eq", "NEq", "LT", "LEq", "GT", "GEq", "CatProbEq", "CosineSimilarity", "IsTrue",
           "IsFalse", "And", "Or"]


def check_beta(beta: Any, where: str) -> float | None:
    if beta is None:
        return None
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 or beta == float("inf"):
        raise QuintetError(f"{where}: beta must be a finite number > 0, got {beta!r}")
    return float(beta)


class Condition:
    """A probability per batch element computed from the program state."""

    def __init__(self, left: Any, right: Any = None, beta: float | None = None):
        self.label = describe(type(self).__name__, (left,) if right is None else (left, right))
        self.beta = check_beta(beta, self.label)
        self.left = self._operand(left)
        self.right = self._operand(right)
        self.reads = frozenset(_names(left) | _names(right))

    def _operand(self, value: Any):
        if isinstance(value, str):
            return reader(value, self.label)
        if is_function(value):
            return Bound(value, self.label)
        return lambda env, const=value: const

    def configure(self, beta: float) -> None:
        """Take the algorithm's ``beta`` unless the condition set its own."""
        if self.beta is None:
            self.beta = beta

    def probability(self, a: Any, b: Any) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, env: Env) -> torch.Tensor:
        if self.beta is None:
            raise QuintetError(f"{self.label}: beta is not set; use it inside an Algorithm or pass beta=")
        p = self.probability(self.left(env), self.right(env))
        if not isinstance(p, torch.Tensor):
            raise QuintetError(f"{self.label}: the condition gave a {type(p).__name__}; expected a tensor (batch,)")
        return p

    def __and__(self, other: "Condition") -> "Condition":
        return And(self, other)

    def __or__(self, other: "Condition") -> "Condition":
        return Or(self, other)

    def __repr__(self) -> str:
        return self.label


class Eq(Condition):
    """``a == b``: ``sech^2(beta (a - b) / 2)``."""

    def probability(self, a, b):
        return R.soft_eq(a, b, self.beta)


class NEq(Condition):
    """``a != b``: ``1 - sech^2(beta (a - b) / 2)``."""

    def probability(self, a, b):
        return R.soft_neq(a, b, self.beta)


class LT(Condition):
    """``a < b``: ``sigmoid(beta (b - a))``.  ``LEq`` is the same relaxation."""

    def probability(self, a, b):
        return R.soft_lt(a, b, self.beta)


class GT(Condition):
    """``a > b``: ``sigmoid(beta (a - b))``.  ``GEq`` is the same relaxation."""

    def probability(self, a, b):
        return R.soft_gt(a, b, self.beta)


LEq = LT
GEq = GT


class CatProbEq(Condition):
    """Two categorical distributions (last axis) are equal: ``sech(beta (1 - cos(a, b)))``."""

    def probability(self, a, b):
        return 1.0 / torch.cosh((1.0 - torch.cosine_similarity(a, b, -1)) * self.beta)


class CosineSimilarity(Condition):
    """The cosine similarity of ``a`` and ``b`` along the last axis, used as a probability."""

    def probability(self, a, b):
        return torch.cosine_similarity(a, b, -1)


class IsTrue(Condition):
    """A variable that already holds a probability in [0, 1]."""

    def __init__(self, var: Any):
        super().__init__(var)

    def probability(self, a, b):
        _check_unit(a, self.label)
        return a


class IsFalse(Condition):
    """``1 - p`` of a variable that holds a probability in [0, 1]."""

    def __init__(self, var: Any):
        super().__init__(var)

    def probability(self, a, b):
        _check_unit(a, self.label)
        return 1.0 - a


def _names(operand: Any) -> set[str]:
    """The variables an operand reads: its name, or a lambda's parameters."""
    if isinstance(operand, str):
        return {operand}
    return set(inspect.getfullargspec(operand).args) if is_function(operand) else set()


def _check_unit(value: Any, where: str) -> None:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise QuintetError(f"{where}: expected a float tensor holding probabilities, got {type(value).__name__}")
    low, high = (float(v) for v in torch.aminmax(value.detach()))
    if low < 0 or high > 1:
        raise QuintetError(f"{where}: probabilities must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")


class And(Condition):
    """Both conditions hold (independent events): ``p q``."""

    def __init__(self, first: Condition, second: Condition):
        for c in (first, second):
            if not isinstance(c, Condition):
                raise QuintetError(f"{type(self).__name__}: expected two conditions, got {c!r}")
        self.first, self.second = first, second
        self.reads = first.reads | second.reads
        self.label = f"({first.label} {'&' if isinstance(self, And) else '|'} {second.label})"
        self.beta = 1.0  # the operands carry their own beta

    def configure(self, beta: float) -> None:
        self.first.configure(beta)
        self.second.configure(beta)

    def __call__(self, env: Env) -> torch.Tensor:
        return self.combine(self.first(env), self.second(env))

    def combine(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return R.soft_and(p, q)


class Or(And):
    """At least one condition holds (independent events): ``p + q - p q``."""

    def combine(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return R.soft_or(p, q)
