"""Algorithms written in the program language: bubble sort with a swap counter (the sorting
supervision loss of Petersen et al., NeurIPS 2021, Sec. 5.1), relaxed Bellman-Ford with its
traceback, and the Levenshtein distance.

Both run unchanged on the authors' ``algovision`` package when built from its classes
(``language=algovision``), which is how the tests compare the two.
"""

from __future__ import annotations

from types import ModuleType

import torch

from quintet.algovision import relaxations as R
from quintet.algovision.shortest_path import _start, _target, neighbour, transport

__all__ = ["bubble_sort_program", "edit_distance_program", "initial_table", "shortest_path_program"]


def _language(language: ModuleType | None) -> ModuleType:
    if language is None:
        import quintet.algovision as language
    return language


def bubble_sort_program(beta: float = 5.0, hard: bool = False, language: ModuleType | None = None):
    """Bubble sort of ``array: (batch, n)``; returns the (relaxed) sorted array and the expected
    number of swaps.  The swap count of an array given in its true order is the sorting loss."""
    L = _language(language)
    return L.Algorithm(
        L.Input("array"),
        L.Var("a", torch.tensor(0.0)),
        L.Var("b", torch.tensor(0.0)),
        L.Var("swapped", torch.tensor(1.0)),
        L.Var("swaps", torch.tensor(0.0)),
        L.VarInt("n", lambda array: array.shape[1] - 1),
        L.While(L.IsTrue("swapped"),
                L.Let("swapped", 0),
                L.For("i", "n",
                      L.Let("a", "array", ["i"]),
                      L.Let("b", "array", [lambda i: i + 1]),
                      L.If(L.GT("a", "b"),
                           if_true=[L.Let("array", [lambda i: i + 1], "a"),
                                    L.Let("array", ["i"], "b"),
                                    L.Let("swapped", 1.0),
                                    L.Let("swaps", lambda swaps: swaps + 1.0)])),
                L.LetInt("n", lambda n: n - 1)),
        L.Output("array"),
        L.Output("swaps"),
        beta=beta, hard=hard,
    )


def initial_table(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(len(a) + 1, len(b) + 1)`` edit-distance table with the first row and column filled."""
    rows = torch.arange(a.shape[1] + 1, dtype=a.dtype, device=a.device)
    cols = torch.arange(b.shape[1] + 1, dtype=a.dtype, device=a.device)
    return torch.maximum(rows[:, None], cols[None, :]) * ((rows[:, None] == 0) | (cols[None, :] == 0))


def edit_distance_program(beta: float = 5.0, hard: bool = False, language: ModuleType | None = None):
    """Levenshtein distance of two strings given as class probabilities ``a: (batch, la, classes)``
    and ``b: (batch, lb, classes)``; returns the whole table ``(batch, la + 1, lb + 1)``.

    ``if a[i] == b[j]: d[i, j] = d[i-1, j-1] else: d[i, j] = 1 + min(d[i-1, j], d[i, j-1], d[i-1, j-1])``
    with ``P(a[i] == b[j]) = <a[i], b[j]>`` and the soft minimum of inverse temperature ``beta``.
    """
    L = _language(language)

    def minimum(up, left, diag):
        return torch.minimum(torch.minimum(up, left), diag) if hard else R.soft_min(up, left, diag, beta=beta)

    return L.Algorithm(
        L.Input("a"),
        L.Input("b"),
        L.Var("d", lambda a, b: initial_table(a, b)),
        L.Var("same", torch.tensor(0.0)),
        L.Var("up", torch.tensor(0.0)),
        L.Var("left", torch.tensor(0.0)),
        L.Var("diag", torch.tensor(0.0)),
        L.For("i", lambda a: list(range(1, a.shape[1] + 1)),
              L.For("j", lambda b: list(range(1, b.shape[1] + 1)),
                    L.Let("same", lambda a, b, i, j: (a[:, i - 1] * b[:, j - 1]).sum(-1).clamp(0.0, 1.0)),
                    L.Let("up", "d", [lambda i: i - 1, "j"]),
                    L.Let("left", "d", ["i", lambda j: j - 1]),
                    L.Let("diag", "d", [lambda i: i - 1, lambda j: j - 1]),
                    L.If(L.IsTrue("same"),
                         if_true=L.Let("d", ["i", "j"], "diag"),
                         if_false=L.Let("d", ["i", "j"], lambda up, left, diag: 1.0 + minimum(up, left, diag))))),
        L.Output("d"),
        beta=beta, hard=hard,
    )


def shortest_path_program(beta: float, iterations: int, steps: int | None = None, hard: bool = False,
                          language: ModuleType | None = None):
    """Relaxed Bellman-Ford and traceback on a grid (:mod:`quintet.algovision.shortest_path`) as a
    program over ``cost: (batch, H, W)``; outputs ``path, dist``."""
    L = _language(language)
    steps = iterations if steps is None else steps
    onehot = torch.eye(8)
    return L.Algorithm(
        L.Input("cost"),
        L.Var("dist", lambda cost: _start(cost)),
        L.Var("candidate", lambda cost: torch.zeros_like(cost[0])),
        L.Var("pred", lambda cost: cost.new_zeros(*cost.shape[1:], 8)),
        L.Var("trace", lambda cost: _target(cost)),
        L.Var("path", lambda cost: torch.zeros_like(cost[0])),
        L.For("iteration", iterations,
              L.For("k", 8,
                    L.Let("candidate", lambda dist, cost, k: neighbour(dist, k) + cost),
                    L.If(L.LT("candidate", "dist"),
                         if_true=[L.Let("dist", "candidate"),
                                  L.Let("pred", lambda pred, k: onehot[k].to(pred) * torch.ones_like(pred))]))),
        L.For("step", steps,
              L.Let("path", lambda path, trace: path + trace - path * trace),
              L.Let("trace", lambda trace, pred: transport(trace, pred))),
        L.Output("path"), L.Output("dist"),
        beta=beta, hard=hard,
    )
