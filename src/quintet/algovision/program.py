"""Algorithms as programs: declarations (``Input``, ``Output``, ``Var``, ``VarInt``) and the
:class:`Algorithm` module that runs a sequence of statements on a batch.

Written like the authors' ``algovision`` package, so a program for it runs here unchanged::

    bubble = Algorithm(Input('array'), Var('swapped', torch.tensor(1.)), ..., Output('array'), beta=5)
    sorted_array = bubble(x)                     # x: (batch, n)
"""

from __future__ import annotations

from typing import Any

import torch

from quintet.algovision.conditions import check_beta
from quintet.algovision.scope import Bound, Env, batched, check_name, dense, is_function
from quintet.algovision.statements import Statement, _hard_value, set_live
from quintet.core.errors import QuintetError

__all__ = ["Input", "Output", "Variable", "Var", "VariableInt", "VarInt", "Algorithm"]


class _Declaration:
    kind = "Declaration"

    def __init__(self, name: str, shape: tuple | None = None, dtype: torch.dtype | None = None):
        self.name = check_name(name, f"{self.kind}({name!r})")
        self.shape = None if shape is None else tuple(shape)
        self.dtype = dtype

    def check(self, value: Any) -> None:
        where = f"{self.kind}({self.name!r})"
        if not isinstance(value, torch.Tensor):
            raise QuintetError(f"{where}: expected a tensor, got {type(value).__name__}")
        if self.shape is not None and tuple(value.shape[1:]) != self.shape:
            raise QuintetError(f"{where}: shape {tuple(value.shape)} does not match (batch, *{self.shape})")
        if self.dtype is not None and value.dtype != self.dtype:
            raise QuintetError(f"{where}: dtype {value.dtype} does not match {self.dtype}")


class Input(_Declaration):
    """An argument of the algorithm: a tensor ``(batch, *shape)``."""

    kind = "Input"


class Output(_Declaration):
    """A variable returned by the algorithm, in declaration order."""

    kind = "Output"


class Variable:
    """A relaxed variable with an initial value without batch axis (a tensor, or a lambda over
    inputs and earlier variables returning one); repeated over the batch."""

    def __init__(self, name: str, initial_value: Any):
        self.label = f"Var({name!r})"
        self.name = check_name(name, self.label)
        if is_function(initial_value):
            self.initial = Bound(initial_value, self.label)
        elif isinstance(initial_value, torch.Tensor):
            self.initial = initial_value.detach().clone()
        else:
            raise QuintetError(f"{self.label}: the initial value must be a tensor or a lambda, "
                               f"got {type(initial_value).__name__}")

    def value(self, env: Env, batch: int) -> torch.Tensor:
        value = self.initial(env) if isinstance(self.initial, Bound) else self.initial
        if not isinstance(value, torch.Tensor):
            raise QuintetError(f"{self.label}: the lambda returned {type(value).__name__}; expected a tensor")
        return batched(value, batch)


class VariableInt:
    """A hard integer variable (``int`` or ``list[int]``, or a lambda returning one) for control flow
    that does not depend on relaxed values, e.g. loop bounds."""

    def __init__(self, name: str, initial_value: Any):
        self.label = f"VarInt({name!r})"
        self.name = check_name(name, self.label)
        self.initial = Bound(initial_value, self.label) if is_function(initial_value) else \
            _hard_value(initial_value, self.label)

    def value(self, env: Env, batch: int) -> int | list[int]:
        if isinstance(self.initial, Bound):
            return _hard_value(self.initial(env), self.label)
        return list(self.initial) if isinstance(self.initial, list) else self.initial


Var = Variable
VarInt = VariableInt


class Algorithm(torch.nn.Module):
    """A relaxed program: ``Algorithm(*inputs, *variables, *statements, *outputs, beta=10.)``.

    ``beta`` is the inverse temperature of every condition that does not set its own;
    ``max_iter`` bounds each ``While``; ``epsilon`` is the probability below which a branch or a
    loop iteration is skipped; ``hard=True`` runs the discrete algorithm.
    """

    def __init__(self, *sequence: Any, beta: float = 10.0, max_iter: int = 2 ** 10, epsilon: float = 1e-5,
                 hard: bool = False, debug: bool = False):
        super().__init__()
        self.beta = check_beta(beta, "Algorithm")
        if self.beta is None:
            raise QuintetError("Algorithm: beta must be a finite number > 0, got None")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise QuintetError(f"Algorithm: max_iter must be an int >= 1, got {max_iter!r}")
        if not isinstance(epsilon, (int, float)) or not 0 <= epsilon < 1:
            raise QuintetError(f"Algorithm: epsilon must be in [0, 1), got {epsilon!r}")
        self.max_iter, self.epsilon, self.hard, self.debug = max_iter, float(epsilon), bool(hard), bool(debug)
        self.inputs: list[Input] = []
        self.outputs: list[Output] = []
        self.variables: list[Variable | VariableInt] = []
        self.statements: list[Statement] = []
        names: set[str] = set()
        for item in sequence:
            if isinstance(item, (Input, Variable, VariableInt)):
                if item.name in names:
                    raise QuintetError(f"Algorithm: {item.name!r} is declared twice")
                names.add(item.name)
            if isinstance(item, Input):
                self.inputs.append(item)
            elif isinstance(item, Output):
                self.outputs.append(item)
            elif isinstance(item, (Variable, VariableInt)):
                self.variables.append(item)
            elif isinstance(item, Statement):
                self.statements.append(item)
            else:
                raise QuintetError(f"Algorithm: unsupported element {item!r}; expected Input, Output, Var, VarInt "
                                   "or a statement")
        if not self.inputs or not self.outputs:
            raise QuintetError("Algorithm: needs at least one Input and one Output")
        for statement in self.statements:
            statement.configure(beta=self.beta, max_iter=self.max_iter, epsilon=self.epsilon, hard=self.hard,
                                debug=self.debug)
        set_live(self.statements, frozenset(out.name for out in self.outputs))

    def initial_state(self, *inputs: torch.Tensor) -> tuple[Env, int]:
        """The variable table before the first statement, and the batch size."""
        if len(inputs) != len(self.inputs):
            raise QuintetError(f"Algorithm: expected {len(self.inputs)} inputs "
                               f"({', '.join(i.name for i in self.inputs)}), got {len(inputs)}")
        for decl, value in zip(self.inputs, inputs):
            decl.check(value)
            if value.dim() == 0:
                raise QuintetError(f"Input({decl.name!r}): needs a leading batch axis, got a 0-d tensor")
        batch = inputs[0].shape[0]
        env: Env = {}
        for decl, value in zip(self.inputs, inputs):
            if value.shape[0] != batch:
                raise QuintetError(f"Input({decl.name!r}): batch size {value.shape[0]} does not match "
                                   f"{batch} of Input({self.inputs[0].name!r})")
            env[decl.name] = value
        device = inputs[0].device
        for var in self.variables:
            value = var.value(env, batch)
            env[var.name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return env, batch

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        env, batch = self.initial_state(*inputs)
        for statement in self.statements:
            statement.run(env, batch)
        values = []
        for out in self.outputs:
            if out.name not in env:
                raise QuintetError(f"Output({out.name!r}): no such variable; defined are: {', '.join(env)}")
            value = dense(env[out.name])
            out.check(value)
            values.append(value)
        return values[0] if len(values) == 1 else tuple(values)
