"""Statements of the program language: assignments (``Let``, ``LetInt``), relaxed ``If`` and
``While``, unrolled ``For``, and ``Print`` (Petersen et al., NeurIPS 2021, Sec. 3).

``If`` runs both branches and blends only the variables a branch wrote, weighted by the
condition's probability; a branch whose probability is below ``epsilon`` for every batch element
is skipped.  ``While`` returns the expectation over the number of iterations,
``sum_k P(stop after k) s_k``, and stops once the probability of continuing is below
``epsilon`` everywhere or after ``max_iter`` iterations (a :class:`MaxIterationsWarning`).
With ``hard=True`` both use the 0/1 decision ``p > 0.5``: the discrete algorithm.
"""

from __future__ import annotations

import collections.abc
import warnings
from typing import Any, Callable, Sequence

import torch

from quintet.algovision.conditions import Condition
from quintet.algovision.scope import (
    Bound,
    Env,
    Overlay,
    batched,
    blend,
    check_name,
    check_weight,
    dense,
    describe,
    expand_weight,
    is_function,
    is_hard,
    lookup,
    read,
    reader,
)
from quintet.core.errors import QuintetError

Names = frozenset[str] | None  # variable names; None: not known, any variable

__all__ = ["Statement", "Let", "LetInt", "Print", "If", "While", "For", "MaxIterationsWarning"]


class MaxIterationsWarning(RuntimeWarning):
    """A relaxed ``While`` stopped at ``max_iter`` while the probability of continuing was above epsilon."""


class Statement:
    """One step of a program; ``run(env, batch)`` updates the variable table in place."""

    label = "Statement"

    def configure(self, **settings: Any) -> None:
        """Fill unset hyperparameters (``None``) from the enclosing algorithm, recursively."""
        for key, value in settings.items():
            if key in self.__dict__ and self.__dict__[key] is None:
                setattr(self, key, value)
        for child in self.children():
            child.configure(**settings)
        for cond in self.conditions():
            cond.configure(settings["beta"])

    def children(self) -> list["Statement"]:
        return []

    def conditions(self) -> list[Condition]:
        return []

    def operands(self) -> list[Any] | None:
        """Names and lambdas this statement itself reads (not its children); ``None``: unknown."""
        return None

    def reads(self) -> Names:
        """Every variable this statement, its conditions and its children may read."""
        operands = self.operands()
        return _union(None if operands is None else frozenset(_names(operands)),
                      *(getattr(cond, "reads", None) for cond in self.conditions()),
                      *(child.reads() for child in self.children()))

    def writes(self) -> Names:
        """Every variable this statement may assign (loop variables excluded); ``None``: unknown."""
        return None

    def set_live(self, after: Names) -> None:
        """Record which variables may be read after this statement (see :func:`set_live`)."""
        for block in self.blocks():
            set_live(block, after)

    def blocks(self) -> list[list["Statement"]]:
        return []

    def run(self, env: Env, batch: int) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.label


def _block(value: Any, where: str) -> list[Statement]:
    """``None``, a statement or a list of statements -> list of statements."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Statement):
            raise QuintetError(f"{where}: expected a statement (Let, If, While, For, ...), got {item!r}")
    return items


def _names(items: Any) -> set[str]:
    """Variable names among operands: names themselves and the parameters of lambdas."""
    if isinstance(items, str):
        return {items}
    if type(items) is Bound:
        return set(items.names)
    if isinstance(items, (list, tuple)):
        return {name for item in items for name in _names(item)}
    return set()


def _union(*parts: Names) -> Names:
    """The union of sets of names; ``None`` (unknown: any variable) absorbs the rest."""
    return None if any(part is None for part in parts) else frozenset().union(*parts)


def _writes(block: Sequence[Statement]) -> Names:
    return _union(*(statement.writes() for statement in block))


def set_live(block: Sequence[Statement], after: Names) -> None:
    """Static liveness, once per program: each statement learns which variables may be read after it
    (``after``: what follows the block).  Conservative: a later read counts even after an overwrite,
    a loop body sees every read of the loop, and a statement or condition that does not declare its
    reads (``None``) counts as reading every variable."""
    live = after
    for statement in reversed(block):
        statement.set_live(live)
        live = _union(live, statement.reads())


def run_block(block: Sequence[Statement], env: Env, batch: int) -> None:
    for statement in block:
        statement.run(env, batch)


def _assign(env: Env, name: str, value: Any, where: str) -> None:
    """``name = value`` with the type and shape rules of relaxed and hard variables."""
    old = env.get(name)
    if type(value) is torch.Tensor and type(old) is torch.Tensor and value.dtype == old.dtype \
            and value.shape == old.shape:
        env[name] = value
        return
    old = lookup(env, name, where)
    if type(old) is Overlay:
        old = old.base
    if isinstance(old, torch.Tensor):
        if isinstance(value, torch.Tensor):
            if value.shape != old.shape:
                raise QuintetError(f"{where}: value of shape {tuple(value.shape)} cannot be written to {name!r} "
                                   f"of shape {tuple(old.shape)} (the first axis is the batch)")
            dtype = torch.promote_types(value.dtype, old.dtype)
            env[name] = value if value.dtype == dtype else value.to(dtype)
        elif isinstance(value, (int, float)):
            env[name] = torch.full_like(old, value)
        else:
            raise QuintetError(f"{where}: cannot write a {type(value).__name__} to tensor variable {name!r}")
    elif type(value) is not type(old):
        raise QuintetError(f"{where}: {name!r} holds a {type(old).__name__}; cannot write a {type(value).__name__}")
    else:
        env[name] = value


class Let(Statement):
    """Assignment to relaxed variables.

    ``Let('a', 'x')`` a = x; ``Let('a', lambda x: x**2)``; ``Let('a', 'array', ['i'])`` a = array[i];
    ``Let('array', ['i'], 'x')`` array[i] = x; ``Let('a', ['i'], 'x', ['j'])``;
    ``Let(['a', 'b'], lambda x, y: (x + y, x - y))``.  A tensor as the only left index
    (``Let('array', [lambda w: w], 'x')``) writes softly: ``array = w x + (1 - w) array``.
    """

    def __init__(self, *args: Any):
        self.label = describe("Let", args)
        self.target_index: list | None = None
        self.value_index: list | None = None
        shapes = [type(a).__name__ for a in args]
        if len(args) == 2 and isinstance(args[0], list):
            if not all(isinstance(x, str) for x in args[0]) or not is_function(args[1]):
                raise QuintetError(f"{self.label}: a list of targets needs a lambda returning that many values")
            targets, value = args
        elif len(args) == 2:
            targets, value = args
        elif len(args) == 3 and isinstance(args[1], list):
            targets, self.target_index, value = args
        elif len(args) == 3 and isinstance(args[1], str) and isinstance(args[2], list):
            targets, value, self.value_index = args
        elif len(args) == 4 and isinstance(args[1], list) and isinstance(args[2], str) and isinstance(args[3], list):
            targets, self.target_index, value, self.value_index = args
        else:
            raise QuintetError(f"{self.label}: unsupported arguments ({', '.join(shapes)}); expected Let(name, value), "
                               "Let(name, value_name, [index]), Let(name, [index], value) or Let([names], lambda)")
        if isinstance(targets, list):
            self.targets = [check_name(t, self.label) for t in targets]
        else:
            self.targets = check_name(targets, self.label)
        if not isinstance(value, (str, int, float, torch.Tensor)) and not is_function(value):
            raise QuintetError(f"{self.label}: the value must be a variable name, lambda, number or tensor, "
                               f"got {type(value).__name__}")
        self.value = Bound(value, self.label) if is_function(value) else value
        self.value_index = [self._index(i) for i in self.value_index] if self.value_index else None
        self.target_index = [self._index(i) for i in self.target_index] if self.target_index else None
        # ``a = 1.0``, ``a = f(...)``, ``a = array[i]`` and ``array[i] = x`` with one integer index:
        # shortcuts (the cells of an array kept as an Overlay); anything else takes the general path.
        whole = isinstance(self.targets, str) and self.target_index is None and self.value_index is None
        if whole and type(self.value) in (int, float):
            self.run = self._run_constant
        elif whole and type(self.value) is Bound:
            self.run = self._run_lambda
        elif isinstance(self.targets, str) and self.target_index is None and type(self.value) is str \
                and _one_hard_index(self.value_index):
            self._at = _operand_reader(self.value_index[0], self.label)
            self.run = self._run_read
        elif isinstance(self.targets, str) and self.value_index is None and type(self.value) in (str, Bound) \
                and _one_hard_index(self.target_index):
            self._at = _operand_reader(self.target_index[0], self.label)
            self._get = _operand_reader(self.value, self.label)
            self.run = self._run_write

    def writes(self) -> Names:
        return frozenset(self.targets if isinstance(self.targets, list) else [self.targets])

    def operands(self) -> list[Any]:
        written = self.targets if self.target_index is not None else None  # a partial write keeps the rest
        return [self.value, self.value_index or [], self.target_index or [], written]

    def _index(self, index: Any):
        if is_function(index):
            return Bound(index, self.label)
        if index is None:
            return slice(None)
        if isinstance(index, (int, slice, str, torch.Tensor)) and not isinstance(index, bool):
            return index
        raise QuintetError(f"{self.label}: index {index!r} must be an int, slice, None, variable name, lambda or tensor")

    def _resolve(self, index: Any, env: Env, batch: int, soft_ok: bool):
        kind = type(index)
        if kind is Bound:
            index = index(env)
        elif kind is str:
            index = read(env, index, self.label)
        elif kind is int or kind is slice:
            return index
        elif isinstance(index, torch.Tensor) and soft_ok:
            return batched(index, batch)
        if type(index) is int:
            return index
        if isinstance(index, torch.Tensor) and soft_ok:
            return index
        if not isinstance(index, (int, slice)) or isinstance(index, bool):
            kind = "an int or a probability tensor" if soft_ok else "an int (relaxed reads go in a lambda)"
            raise QuintetError(f"{self.label}: index evaluated to {type(index).__name__}; expected {kind}")
        return index

    def _value(self, env: Env, batch: int) -> Any:
        value = self.value
        if isinstance(value, Bound):
            value = value(env)
        elif isinstance(value, str):
            value = lookup(env, value, self.label)
        elif isinstance(value, torch.Tensor):
            value = batched(value, batch)
        if self.value_index is None:
            return dense(value)
        shape = getattr(value, "shape", ())
        if not isinstance(value, (torch.Tensor, Overlay)) or len(self.value_index) > len(shape) - 1:
            raise QuintetError(f"{self.label}: cannot index a value of shape {tuple(shape)} "
                               f"with {len(self.value_index)} indices")
        index = [self._resolve(i, env, batch, False) for i in self.value_index]
        if type(value) is Overlay:
            cell = self._cell_index(index, value)
            if cell is None:
                value = value.dense()
            else:
                value, index = value.cell(cell), index[value.depth:]
        if not index:
            return value
        try:
            return value[(slice(None), *index)]
        except IndexError as exc:
            raise QuintetError(f"{self.label}: {exc}") from None

    def _cell_index(self, index: list, overlay: Overlay) -> tuple | None:
        """The overlay cell that ``index`` falls in (negative ints wrapped), or ``None``."""
        if overlay.depth == 1 and index and type(index[0]) is int and 0 <= index[0] < overlay.base.shape[1]:
            return (index[0],)
        if len(index) < overlay.depth:
            return None
        cell = []
        for i, size in zip(index[:overlay.depth], overlay.shape[1:]):
            if not isinstance(i, int):
                return None
            if not -size <= i < size:
                raise QuintetError(f"{self.label}: index {i} is out of range for an axis of size {size}")
            cell.append(i % size)
        return tuple(cell)

    def _run_read(self, env: Env, batch: int) -> None:
        source, i = env.get(self.value), self._at(env)
        if type(i) is int and type(source) is Overlay and source.depth == 1 and 0 <= i < source.base.shape[1]:
            value = source.cell((i,))
        else:
            value = self._value(env, batch)
        _assign(env, self.targets, value, self.label)

    def _run_constant(self, env: Env, batch: int) -> None:
        old = env.get(self.targets)
        if type(old) is torch.Tensor:
            env[self.targets] = torch.full_like(old, self.value)
        else:
            self._store(env, self.value, batch)

    def _run_lambda(self, env: Env, batch: int) -> None:
        value = self.value(env)
        if type(value) is torch.Tensor:
            _assign(env, self.targets, value, self.label)
        else:
            self._store(env, value, batch)

    def _run_write(self, env: Env, batch: int) -> None:
        old, i, value = env.get(self.targets), self._at(env), self._get(env)
        if type(old) is torch.Tensor and old.dim() > 1:
            old = Overlay(old, {}, 1)
        if type(i) is int and type(old) is Overlay and old.depth == 1 and 0 <= i < old.base.shape[1] \
                and type(value) is torch.Tensor and value.dtype == old.base.dtype \
                and value.shape == old.cell_shape:
            env[self.targets] = old.with_cell((i,), value)
        else:
            self._store(env, value, batch)

    def run(self, env: Env, batch: int) -> None:
        self._store(env, self._value(env, batch), batch)

    def _store(self, env: Env, value: Any, batch: int) -> None:
        """Write an evaluated value to the targets (at the target index, if any)."""
        if isinstance(self.targets, list):
            if not isinstance(value, (tuple, list)) or len(value) != len(self.targets):
                raise QuintetError(f"{self.label}: expected {len(self.targets)} values, got {type(value).__name__}"
                                   + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
            for name, v in zip(self.targets, value):
                _assign(env, name, v, self.label)
            return
        if type(value) is not torch.Tensor and (not isinstance(value, (torch.Tensor, int, float))
                                                or isinstance(value, bool)):
            raise QuintetError(f"{self.label}: the value is a {type(value).__name__}; expected a tensor or a number")
        if self.target_index is None:
            _assign(env, self.targets, value, self.label)
        else:
            env[self.targets] = self._write(lookup(env, self.targets, self.label), value, env, batch)

    def _write(self, old: Any, value: Any, env: Env, batch: int) -> torch.Tensor:
        """``old[index] = value``: a hard write at integer indices, a soft write at a probability tensor."""
        shape = getattr(old, "shape", ())
        if not isinstance(old, (torch.Tensor, Overlay)) or len(self.target_index) > len(shape) - 1:
            raise QuintetError(f"{self.label}: {self.targets!r} cannot take {len(self.target_index)} indices "
                               f"(shape {tuple(shape)}, the first axis is the batch)")
        index = [self._resolve(i, env, batch, True) for i in self.target_index]
        if any(isinstance(i, torch.Tensor) for i in index):
            if isinstance(value, torch.Tensor):
                while value.dim() < len(shape):
                    value = value.unsqueeze(-1)
            if len(index) != 1 or index[0].dim() != len(shape):
                raise QuintetError(f"{self.label}: a soft write needs exactly one probability tensor of the "
                                   f"variable's shape {tuple(shape)}")
            weight = index[0]
            return weight * value + (1 - weight) * dense(old)
        base = old.base if type(old) is Overlay else old
        if isinstance(value, torch.Tensor) and value.dtype != base.dtype:
            dtype = torch.promote_types(value.dtype, base.dtype)
            old = dense(old).to(dtype)
        key = (slice(None), *index)
        if type(old) is Overlay and len(index) != old.depth:
            old = old.dense()
        if type(old) is not Overlay:
            old = Overlay(old, {}, len(index))
        cell = self._cell_index(index, old)
        target = old.cell_shape if cell is not None else old.base[key].shape  # ``_cell_index`` checked the range
        if isinstance(value, torch.Tensor) and value.shape != target:
            while value.dim() < len(shape):
                value = value.unsqueeze(-1)
            value = value.expand(shape)[key]
        if cell is None:
            new = dense(old).clone()
            new[key] = value
            return new
        return old.with_cell(cell, value if isinstance(value, torch.Tensor) else old.base.new_full(target, value))


class LetInt(Statement):
    """Assignment to a hard integer variable: ``LetInt('n', lambda n: n - 1)``, an int, a list of ints or a
    variable name."""

    def __init__(self, *args: Any):
        self.label = describe("LetInt", args)
        if len(args) != 2:
            raise QuintetError(f"{self.label}: expected LetInt(name, value), got {len(args)} arguments")
        self.target = check_name(args[0], self.label)
        value = args[1]
        if is_function(value):
            self.value = Bound(value, self.label)
        elif isinstance(value, str):
            self.value = value
        else:
            self.value = _hard_value(value, self.label)

    def writes(self) -> Names:
        return frozenset([self.target])

    def operands(self) -> list[Any]:
        return [self.value]

    def run(self, env: Env, batch: int) -> None:
        value = self.value
        if isinstance(value, Bound):
            value = _hard_value(value(env), self.label)
        elif isinstance(value, str):
            value = _hard_value(read(env, value, self.label), self.label)
        elif isinstance(value, list):
            value = list(value)
        _assign(env, self.target, value, self.label)


def _one_hard_index(index: list | None) -> bool:
    """A single index that is an int, a variable name or a lambda (not a slice or a tensor)."""
    return index is not None and len(index) == 1 and type(index[0]) in (int, str, Bound)


def _operand_reader(index: int | str | Bound, where: str) -> Callable[[Env], Any]:
    """``env -> value`` of an int, a variable name (overlays made dense) or a lambda."""
    if type(index) is int:
        return lambda env: index
    if type(index) is str:
        return reader(index, where)
    return index


def _hard_value(value: Any, where: str) -> int | list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, collections.abc.Iterable) and not isinstance(value, (str, torch.Tensor)):
        value = list(value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
    raise QuintetError(f"{where}: integer variables hold an int or a list of ints, got {value!r}")


class Print(Statement):
    """Prints ``fn(variables...)``; does not change the state."""

    def __init__(self, function: Any):
        self.label = describe("Print", (function,))
        if not is_function(function):
            raise QuintetError(f"{self.label}: expected a lambda over variables")
        self.function = Bound(function, self.label)

    def operands(self) -> list[Any]:
        return [self.function]

    def writes(self) -> Names:
        return frozenset()

    def run(self, env: Env, batch: int) -> None:
        print(self.function(env))


def _probability(condition: Condition, env: Env, batch: int, where: str) -> torch.Tensor:
    p = condition(env)
    if p.dim() == 0 or p.shape[0] != batch:
        raise QuintetError(f"{where}: the condition {condition.label} gave shape {tuple(p.shape)}; expected one "
                           f"probability per batch element, shape ({batch},)")
    return p


def _check_condition(condition: Any, where: str) -> Condition:
    if not isinstance(condition, Condition):
        raise QuintetError(f"{where}: expected a condition (GT, LT, Eq, IsTrue, ...), got {condition!r}")
    return condition


class If(Statement):
    """``if condition: if_true else: if_false``, relaxed: every variable a branch writes becomes
    ``p * value_true + (1 - p) * value_false``."""

    def __init__(self, condition: Condition, if_true: Any = None, if_false: Any = None,
                 epsilon: float | None = None, hard: bool | None = None, debug: bool | None = None):
        self.label = describe("If", (condition,))
        self.condition = _check_condition(condition, self.label)
        self.if_true = _block(if_true, self.label + " if_true")
        self.if_false = _block(if_false, self.label + " if_false")
        self.epsilon, self.hard, self.debug = epsilon, hard, debug
        written = self.writes()
        self.written = None if written is None else sorted(written)

    def children(self) -> list[Statement]:
        return [*self.if_true, *self.if_false]

    def blocks(self) -> list[list[Statement]]:
        return [self.if_true, self.if_false]

    def operands(self) -> list[Any]:
        return []

    def writes(self) -> Names:
        return _writes(self.children())

    def conditions(self) -> list[Condition]:
        return [self.condition]

    def run(self, env: Env, batch: int) -> None:
        p = _probability(self.condition, env, batch, self.label)
        if self.debug:
            print(self.label, p)
        if self.if_false:
            low, high = torch.aminmax(p.detach())
            run_true, run_false = bool(self.if_true) and float(high) > self.epsilon, float(low) < 1 - self.epsilon
        else:
            run_true, run_false = bool(self.if_true) and float(p.detach().max()) > self.epsilon, False
        if not (run_true or run_false):
            return
        true_env = dict(env)
        false_env = dict(env) if run_false else env
        if run_true:
            run_block(self.if_true, true_env, batch)
        if run_false:
            run_block(self.if_false, false_env, batch)
        weight = (p > 0.5).to(p.dtype) if self.hard else p
        merge(env, true_env, false_env, weight, self.label, self.written)


def merge(env: Env, true_env: Env, false_env: Env, weight: torch.Tensor, where: str,
          names: Sequence[str] | None) -> None:
    """``env[k] = weight * true[k] + (1 - weight) * false[k]`` for the variables ``names`` that the
    branches may write (``None``: every variable; the others are unchanged); overlays on one base
    blend only their replaced cells."""
    expanded: dict[int, torch.Tensor] = {}

    def mix(name: str, f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ndim = t.dim()
        w = expanded.get(ndim)
        if w is None:
            w = expanded[ndim] = expand_weight(weight, ndim, where, name)
        return blend(f, t, w)

    for name in true_env if names is None else names:
        if name not in true_env:  # a branch that did not run names an unknown variable
            continue
        t, f = true_env[name], false_env[name]
        if t is f:
            env[name] = t
            continue
        if type(t) is torch.Tensor and type(f) is torch.Tensor and t.is_floating_point():
            env[name] = mix(name, f, t)
            continue
        if is_hard(t) or is_hard(f):
            if isinstance(t, torch.Tensor) and isinstance(f, torch.Tensor) and torch.equal(t, f) or \
                    not isinstance(t, torch.Tensor) and t == f:
                env[name] = t
                continue
            raise QuintetError(f"{where}: the branches assign different values to the hard variable {name!r}; "
                               "integer variables must not depend on relaxed conditions")
        if type(t) is Overlay and f is t.base:
            f = Overlay(f, {}, t.depth, t.shared)
        elif type(f) is Overlay and t is f.base:
            t = Overlay(t, {}, f.depth, f.shared)
        if type(t) is Overlay and type(f) is Overlay and t.base is f.base and t.depth == f.depth:
            check_weight(weight, t.base.dim(), where, name)
            cells = dict(t.cells)
            for index in {**f.cells, **t.cells}:
                tv, fv = t.cells.get(index), f.cells.get(index)
                if tv is not fv:
                    cells[index] = mix(name, f.cell(index) if fv is None else fv, t.cell(index) if tv is None else tv)
            env[name] = Overlay(t.base, cells, t.depth, t.shared)
        else:
            env[name] = mix(name, dense(f), dense(t))


class While(Statement):
    """``while condition: body``, relaxed: the expectation of the state over the stopping iteration.
    ``iterations`` holds the number of iterations the last run took."""

    def __init__(self, condition: Condition, *sequence: Statement, max_iter: int | None = None,
                 epsilon: float | None = None, hard: bool | None = None, debug: bool | None = None):
        self.label = describe("While", (condition,))
        self.condition = _check_condition(condition, self.label)
        self.sequence = _block(list(sequence), self.label)
        self.max_iter, self.epsilon, self.hard, self.debug = max_iter, epsilon, hard, debug
        self.iterations = 0
        self.live: Names = None  # accumulate every variable until :func:`set_live` says otherwise
        self.analysed = False

    def children(self) -> list[Statement]:
        return list(self.sequence)

    def conditions(self) -> list[Condition]:
        return [self.condition]

    def operands(self) -> list[Any]:
        return []

    def writes(self) -> Names:
        return _writes(self.sequence)

    def set_live(self, after: Names) -> None:
        # a union: a loop shared by two algorithms keeps what either reads after it
        self.live = _union(self.live, after) if self.analysed else after
        self.analysed = True
        set_live(self.sequence, _union(self.live, self.reads()))

    def _p(self, env: Env, batch: int) -> torch.Tensor:
        p = _probability(self.condition, env, batch, self.label)
        return (p > 0.5).to(p.dtype) if self.hard else p

    def run(self, env: Env, batch: int) -> None:
        # A value that stays current from iteration a to b carries the telescoped weight
        # P(continue before a) - P(continue after b); only changed variables that may be read after
        # the loop (``live``) are accumulated, and variables current since the same iteration share
        # one weight.
        go = self._p(env, batch)
        start = torch.ones_like(go)
        current = {name: value for name, value in env.items() if self.live is None or name in self.live}
        since = dict.fromkeys(current, start)
        total: dict[str, torch.Tensor] = {}
        weights: dict[tuple, tuple] = {}  # (id(since), id(until)[, ndim]) -> (span kept alive, weight)
        i = 0
        while i < self.max_iter and float(go.detach().max()) > self.epsilon:
            run_block(self.sequence, env, batch)
            for name, old in current.items():
                value = env[name]
                if value is not old:
                    if not is_hard(old):
                        self._add(total, name, old, (since[name], go), weights)
                    current[name], since[name] = value, go
            go = go * self._p(env, batch)
            i += 1
            if self.debug:
                print(self.label, "iteration", i, "continue probability", go)
        self.iterations = i
        if float(go.detach().max()) > self.epsilon:
            warnings.warn(f"{self.label}: stopped at max_iter={self.max_iter} with continue probability "
                          f"{float(go.detach().max()):.3g} > epsilon={self.epsilon}", MaxIterationsWarning, stacklevel=2)
        for name, value in current.items():
            if name in env and not is_hard(value):
                env[name] = value if name not in total else self._add(total, name, value, (since[name], None),
                                                                      weights)

    def _add(self, total: dict, name: str, value: Any, span: tuple, weights: dict) -> torch.Tensor:
        """``total[name] += (since - until) * value`` (``until=None``: ``since * value``); the weight
        is computed once per span, and expanded once per number of dimensions."""
        value = dense(value)
        key = (id(span[0]), id(span[1]))
        if key not in weights:
            since, until = span
            weights[key] = (span, since if until is None else since - until)
        ndim_key = (*key, value.dim())
        if ndim_key not in weights:
            weights[ndim_key] = (span, expand_weight(weights[key][1], value.dim(), self.label, name))
        weight = weights[ndim_key][1]
        total[name] = weight * value if name not in total else torch.addcmul(total[name], weight, value)
        return total[name]


class For(Statement):
    """``for var in range(n)`` / ``for var in list``, unrolled; ``range_or_list`` is an int, a list of
    ints, the name of an integer variable or a lambda returning either."""

    def __init__(self, var: str, range_or_list: Any, *sequence: Statement):
        self.label = describe("For", (var, range_or_list))
        self.var = check_name(var, self.label)
        if is_function(range_or_list):
            self.range = Bound(range_or_list, self.label)
        elif isinstance(range_or_list, str):
            self.range = range_or_list
        else:
            self.range = _hard_value(range_or_list, self.label)
        self.sequence = _block(list(sequence), self.label)

    def children(self) -> list[Statement]:
        return list(self.sequence)

    def operands(self) -> list[Any]:
        return [self.range]

    def writes(self) -> Names:
        written = _writes(self.sequence)
        return None if written is None else written - {self.var}

    def set_live(self, after: Names) -> None:
        set_live(self.sequence, _union(after, self.reads()))

    def run(self, env: Env, batch: int) -> None:
        values = self.range
        if isinstance(values, Bound):
            values = _hard_value(values(env), self.label)
        elif isinstance(values, str):
            values = _hard_value(read(env, values, self.label), self.label)
        if self.var in env:
            raise QuintetError(f"{self.label}: the loop variable {self.var!r} already exists in the outer scope")
        for i in range(values) if isinstance(values, int) else values:
            env[self.var] = i
            run_block(self.sequence, env, batch)
        env.pop(self.var, None)
