"""Names, lambdas and the variable table shared by every statement of an algorithm.

A program's state is a plain ``dict`` from variable name to value: a tensor with a leading batch
dimension (relaxed variable), or a Python ``int`` / ``list[int]`` (hard integer variable).
Lambdas read variables by their parameter names, resolved once when the statement is built.
"""

from __future__ import annotations

import inspect
import re
import types
from typing import Any, Callable

import torch

from quintet.core.errors import QuintetError

NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
Env = dict


def check_name(name: Any, where: str) -> str:
    """``name`` if it is a valid variable name; otherwise a :class:`QuintetError`."""
    if not isinstance(name, str) or not NAME.match(name):
        raise QuintetError(f"{where}: invalid variable name {name!r}; expected an identifier like 'x' or 'loss_1'")
    return name


def is_function(value: Any) -> bool:
    """A lambda or ``def`` function (whose parameter names name variables)."""
    return isinstance(value, types.FunctionType)


def lookup(env: Env, name: str, where: str) -> Any:
    """The stored value of ``name`` (possibly an :class:`Overlay`)."""
    try:
        return env[name]
    except KeyError:
        raise QuintetError(f"{where}: unknown variable {name!r}; defined are: {', '.join(env) or 'none'}") from None


def read(env: Env, name: str, where: str) -> Any:
    """The value of ``name`` as user code sees it (overlays made dense)."""
    value = lookup(env, name, where)
    return value.dense() if type(value) is Overlay else value


def reader(name: str, where: str) -> Callable[[Env], Any]:
    """``env -> read(env, name, where)``, resolved once per statement."""

    def get(env: Env) -> Any:
        try:
            value = env[name]
        except KeyError:
            return read(env, name, where)
        return value.dense() if type(value) is Overlay else value

    return get


class Overlay:
    """A relaxed tensor ``(batch, *shape)`` kept as a base tensor plus replaced cells at integer
    indices of its first ``depth`` non-batch axes.

    Writes at integer indices (``array[i] = x``) and reads there cost nothing; ``If`` blends only the
    cells its branches replaced, not the whole tensor.  :meth:`dense` builds the tensor once.
    ``shared`` belongs to every overlay on one base: ``[columns, cell shape]``; with ``depth == 1``
    the base is split into its columns once, one autograd node instead of one per column read.
    """

    __slots__ = ("base", "cells", "depth", "shared", "_dense")

    def __init__(self, base: torch.Tensor, cells: dict, depth: int, shared: list | None = None):
        self.base, self.cells, self.depth, self._dense = base, cells, depth, None
        self.shared = [None, base.shape[:1] + base.shape[1 + depth:]] if shared is None else shared

    @property
    def cell_shape(self) -> torch.Size:
        """``(batch, *shape)`` of one cell."""
        return self.shared[1]

    @property
    def shape(self) -> torch.Size:
        return self.base.shape

    def cell(self, index: tuple) -> torch.Tensor:
        value = self.cells.get(index)
        if value is not None:
            return value
        if self.depth != 1:
            return self.base[(slice(None), *index)]
        if self.shared[0] is None:
            self.shared[0] = self.base.unbind(1)
        return self.shared[0][index[0]]

    def with_cell(self, index: tuple, value: torch.Tensor) -> "Overlay":
        cells = dict(self.cells)
        cells[index] = value
        return Overlay(self.base, cells, self.depth, self.shared)

    def dense(self) -> torch.Tensor:
        if self._dense is None:
            if self.depth == 1 and 2 * len(self.cells) >= self.base.shape[1]:
                self._dense = torch.stack([self.cell((j,)) for j in range(self.base.shape[1])], 1)
            else:
                dense = self.base.clone()
                for index, value in self.cells.items():
                    dense[(slice(None), *index)] = value
                self._dense = dense
        return self._dense


def batched(value: torch.Tensor, batch: int) -> torch.Tensor:
    """``value`` repeated over a new leading batch axis (a fresh tensor)."""
    return value.expand(batch, *value.shape).clone()


def dense(value: Any) -> Any:
    return value.dense() if type(value) is Overlay else value


class Bound:
    """A lambda whose parameters are variable names: ``Bound(lambda a, b: a + b)(env)``."""

    __slots__ = ("fn", "names", "where", "single")

    def __init__(self, fn: Callable, where: str):
        self.fn = fn
        self.names = tuple(inspect.getfullargspec(fn).args)
        self.where = where
        self.single = self.names[0] if len(self.names) == 1 else None

    def __call__(self, env: Env) -> Any:
        if self.single is not None:  # the common one-parameter lambda, without building a list
            a = env[self.single] if self.single in env else lookup(env, self.single, self.where)
            return self.fn(a.dense() if type(a) is Overlay else a)
        try:
            args = [a.dense() if type(a := env[k]) is Overlay else a for k in self.names]
        except KeyError:
            missing = next(k for k in self.names if k not in env)
            lookup(env, missing, self.where)
        return self.fn(*args)


def describe(kind: str, args: tuple) -> str:
    """A short readable form of a statement, used in error messages: ``Let('a', 'array', ['i'])``."""

    def short(x: Any) -> str:
        if is_function(x):
            return "lambda " + ", ".join(inspect.getfullargspec(x).args)
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(short(v) for v in x) + "]"
        if isinstance(x, torch.Tensor):
            return f"tensor{tuple(x.shape)}"
        if hasattr(x, "label"):
            return x.label
        return repr(x)

    return f"{kind}(" + ", ".join(short(a) for a in args) + ")"


def is_hard(value: Any) -> bool:
    """Hard integer state: ``int``, ``list[int]`` or an integer tensor (never blended)."""
    if type(value) is Overlay:
        return False
    return not isinstance(value, torch.Tensor) or not value.is_floating_point()


def check_weight(weight: torch.Tensor, ndim: int, where: str, name: str) -> None:
    """A ``(batch, …)`` probability must not have more dimensions than the variable it blends."""
    if weight.dim() > ndim:
        raise QuintetError(
            f"{where}: the condition has shape {tuple(weight.shape)}, more dimensions than variable {name!r} "
            f"({ndim}); a condition should give one probability per batch element, shape (batch,)")


def expand_weight(weight: torch.Tensor, ndim: int, where: str, name: str) -> torch.Tensor:
    """Append singleton axes so that a ``(batch, …)`` probability broadcasts over a variable."""
    check_weight(weight, ndim, where, name)
    while weight.dim() < ndim:
        weight = weight.unsqueeze(-1)
    return weight


def blend(old: torch.Tensor, new: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``weight * new + (1 - weight) * old`` in one kernel where the dtypes agree."""
    try:
        return torch.lerp(old, new, weight)
    except RuntimeError:  # lerp does not promote dtypes
        return old + weight * (new - old)
