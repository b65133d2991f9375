"""Same outputs and gradients as the authors' algovision 0.1.2 (float64, 1e-6) on its README's
bubble sort, on the shortest-path and edit-distance programs, and on programs written here."""

from __future__ import annotations

import warnings

import pytest
import torch

import quintet.algovision as Q
from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.edit_distance import soft_edit_distance
from quintet.algovision.programs import (
    bubble_sort_program,
    edit_distance_program,
    shortest_path_program,
)
from quintet.algovision.shortest_path import relaxed_shortest_path

ref = pytest.importorskip("algovision")
TOL = 1e-6


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the reference indexes with lists (a torch deprecation)
        yield


def _run(fn, *inputs, weights=None):
    """Outputs and the gradients of a fixed random projection of them w.r.t. every input."""
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    gen = torch.Generator().manual_seed(123)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in out)
    grads = torch.autograd.grad(loss, inputs)
    return [o.detach() for o in out], list(grads)


def assert_same(a, b, tol=TOL):
    (out_a, grad_a), (out_b, grad_b) = a, b
    assert len(out_a) == len(out_b)
    for x, y in zip(out_a + grad_a, out_b + grad_b):
        assert x.shape == y.shape
        assert torch.allclose(x.to(y.dtype), y, atol=tol, rtol=0), float((x - y).abs().max())


@pytest.mark.parametrize("n,beta", [(3, 5.0), (5, 5.0), (8, 2.0), (6, 20.0)])
def test_bubble_sort_matches_reference(n, beta):
    x = torch.randn(7, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    ours = _run(bubble_sort_program(beta), x)
    theirs = _run(bubble_sort_program(beta, language=ref), x)
    assert_same(ours, theirs)
    assert_same(_run(lambda v: relaxed_bubble_sort(v, beta), x), theirs)
    assert ours[0][1].abs().sum() > 0  # the swap count is not trivially zero


def test_shortest_path_matches_reference():
    cost = torch.rand(3, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 + 0.5
    theirs = _run(shortest_path_program(3.0, 8, language=ref), cost)
    assert_same(_run(shortest_path_program(3.0, 8), cost), theirs)
    assert_same(_run(lambda c: relaxed_shortest_path(c, 3.0, 8), cost), theirs)


def test_edit_distance_matches_reference():
    gen = torch.Generator().manual_seed(1)
    a = torch.softmax(2 * torch.randn(4, 5, 3, generator=gen, dtype=torch.float64), -1)
    b = torch.softmax(2 * torch.randn(4, 4, 3, generator=gen, dtype=torch.float64), -1)
    theirs = _run(lambda x, y: edit_distance_program(4.0, language=ref)(x, y)[:, -1, -1], a, b)
    assert_same(_run(lambda x, y: edit_distance_program(4.0)(x, y)[:, -1, -1], a, b), theirs)
    assert_same(_run(lambda x, y: soft_edit_distance(x, y, 4.0), a, b), theirs)


def _both(build):
    return build(Q), build(ref)


def _programs():
    """Programs written for this test: each uses a different part of the language."""

    def abs_and_clip(L):  # If/else, nested If, constant Let, lambda Let
        return L.Algorithm(
            L.Input("x"), L.Var("y", torch.tensor(0.0)), L.Var("flag", torch.tensor(0.0)),
            L.If(L.GT("x", 0.0), if_true=L.Let("y", "x"),
                 if_false=[L.Let("y", lambda x: -x),
                           L.If(L.LT("x", -1.0), if_true=[L.Let("y", 1.0), L.Let("flag", 1.0)])]),
            L.Output("y"), L.Output("flag"), beta=3.0)

    def doubling(L):  # While with a relaxed stopping time
        return L.Algorithm(
            L.Input("x"), L.Var("steps", torch.tensor(0.0)),
            L.While(L.LT("x", 10.0), L.Let("x", lambda x: 2 * x + 0.5), L.Let("steps", lambda steps: steps + 1)),
            L.Output("x"), L.Output("steps"), beta=1.5)

    def combined(L):  # conjunction, disjunction, Eq, NEq with explicit beta
        return L.Algorithm(
            L.Input("x"), L.Input("z"), L.Var("y", torch.tensor(0.0)),
            L.If(L.GT("x", 0.0, beta=2.0) & L.LT("z", 1.0, beta=3.0), if_true=L.Let("y", lambda x, z: x * z)),
            L.If(L.Eq("x", "z", beta=1.0) | L.NEq("x", 0.5, beta=2.0), if_true=L.Let("y", lambda y: y + 1.0)),
            L.Output("y"), beta=4.0)

    def arrays(L):  # For over a list, writes and reads at indices, multiple assignment, soft write
        def weights(x):
            return torch.softmax(x, -1)

        return L.Algorithm(
            L.Input("v"), L.Var("s", torch.tensor(0.0)), L.Var("d", torch.tensor(0.0)),
            L.Var("t", lambda v: torch.zeros(v.shape[1])),
            L.For("i", [0, 2, 1],
                  L.Let("t", ["i"], "v", [lambda i: i + 1]),
                  L.If(L.GT(lambda v, i: v[:, i], lambda t, i: t[:, i]),
                       if_true=L.Let("t", ["i"], lambda v, i: v[:, i]))),
            L.Let(["s", "d"], lambda t: (t.sum(-1), t[:, 0] - t[:, -1])),
            L.Let("t", [lambda v: weights(v)], "s"),
            L.Output("t"), L.Output("s"), L.Output("d"), beta=2.5)

    def extrema(L):  # Min / ArgMax and a While bounded by a hard counter
        return L.Algorithm(
            L.Input("v"), L.Var("m", torch.tensor(0.0)), L.Var("w", lambda v: torch.zeros(v.shape[1])),
            L.Var("go", torch.tensor(1.0)), L.VarInt("k", 0),
            L.Let("m", lambda v: L.Min(beta=3.0)(*v.unbind(-1))),
            L.Let("w", lambda v: L.ArgMax(beta=2.0)(*v.unbind(-1))),
            L.While(L.IsTrue("go"),
                    L.Let("m", lambda m, w: m + w[:, 0]),
                    L.LetInt("k", lambda k: k + 1),
                    L.If(L.GT("m", 2.0), if_true=L.Let("go", 0.0))),
            L.Output("m"), L.Output("w"), beta=2.0)

    def matrix(L):  # 2-d writes, negative indices, a row write after cell writes, a whole-array lambda
        return L.Algorithm(
            L.Input("v"), L.Var("m", lambda v: torch.zeros(3, v.shape[1])), L.Var("y", torch.tensor(0.0)),
            L.For("i", 3,
                  L.Let("m", ["i", -1], "v", [lambda i: i]),
                  L.If(L.GT(lambda v, i: v[:, i], 0.0),
                       if_true=L.Let("m", ["i", 0], lambda v, i: v[:, i] * 2),
                       if_false=L.Let("m", [-1, "i"], lambda v: v[:, -1]))),
            L.Let("y", "m", [1, -1]),
            L.Let("m", [0], lambda v: v.unsqueeze(1)),
            L.Let("y", lambda m, y: m.sum((1, 2)) + y),
            L.Output("m"), L.Output("y"), beta=2.0)

    def loops(L):  # a While in a For (variables read after it, by the next outer iteration, or only inside
        # it), a For inside an If branch, an array read and written by cells
        return L.Algorithm(
            L.Input("x"), L.Var("acc", torch.tensor(0.0)), L.Var("tmp", torch.tensor(0.0)),
            L.Var("step", torch.tensor(0.0)), L.Var("carry", torch.tensor(1.0)), L.Var("y", torch.tensor(0.0)),
            L.Var("cells", lambda x: torch.zeros(3)),
            L.For("r", 2,
                  L.Let("x", lambda x, carry: x * carry),
                  L.While(L.LT("x", 4.0),
                          L.Let("step", lambda x: x * 0.5),
                          L.Let("x", lambda x, step: x + step + 0.5),
                          L.Let("carry", lambda carry: carry * 0.9)),
                  L.Let("cells", ["r"], "x"),
                  L.Let("tmp", "cells", [lambda r: r + 1]),
                  L.If(L.GT("x", 5.0), if_true=[L.For("j", 2, L.Let("acc", lambda acc, j: acc + j + 1.0)),
                                                L.Let("cells", [lambda r: r + 1], "acc")])),
            L.Let("y", lambda acc, x, tmp: acc + x + tmp),
            L.Output("y"), L.Output("cells"), beta=1.5)

    return {"abs_and_clip": (abs_and_clip, 1), "doubling": (doubling, 1), "combined": (combined, 2),
            "arrays": (arrays, 1), "extrema": (extrema, 1), "matrix": (matrix, 1), "loops": (loops, 1)}


@pytest.mark.parametrize("name", list(_programs()))
def test_own_programs_match_reference(name):
    build, n_inputs = _programs()[name]
    gen = torch.Generator().manual_seed(7)
    shape = (6, 4) if name in ("arrays", "extrema", "matrix") else (6,)
    inputs = [torch.randn(shape, generator=gen, dtype=torch.float64) * 2 for _ in range(n_inputs)]
    if name in ("doubling", "loops"):
        inputs = [inputs[0].abs() + 0.3]
    ours, theirs = _both(build)
    assert_same(_run(ours, *inputs), _run(theirs, *inputs))


def test_static_analysis_of_bubble_sort():
    """The While accumulates only what is read after it; the If blends only what its branch writes."""
    loop = bubble_sort_program(5.0).statements[0]
    if_swap = loop.sequence[1].sequence[2]
    assert loop.live == {"array", "swaps"}
    assert if_swap.written == ["array", "swapped", "swaps"]
    assert loop.reads() == {"swapped", "n", "array", "i", "a", "b", "swaps"}
    assert loop.writes() == {"swapped", "a", "b", "array", "swaps", "n"}


def test_hard_if_matches_reference():
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = bubble_sort_program(5.0, hard=True)(x)
    # the reference's hard mode thresholds If but not While; with few elements both stop after the sort
    theirs = bubble_sort_program(5.0, hard=True, language=ref)(x)
    assert torch.allclose(ours[0], theirs[0], atol=1e-4)


def test_loop_shared_by_two_algorithms_keeps_both_reads():
    loop = Q.While(Q.LT("x", 3.0), Q.Let("x", lambda x: x + 1.0), Q.Let("y", lambda x: 2 * x))
    first = Q.Algorithm(Q.Input("x"), Q.Var("y", torch.tensor(0.0)), loop, Q.Output("x"), beta=2.0)
    second = Q.Algorithm(Q.Input("x"), Q.Var("y", torch.tensor(0.0)), loop, Q.Output("y"), beta=2.0)
    assert loop.live == {"x", "y"}
    x = torch.tensor([0.5, 2.5, 4.0], dtype=torch.float64)
    theirs = [ref.Algorithm(ref.Input("x"), ref.Var("y", torch.tensor(0.0)),
                            ref.While(ref.LT("x", 3.0), ref.Let("x", lambda x: x + 1.0), ref.Let("y", lambda x: 2 * x)),
                            ref.Output(name), beta=2.0) for name in ("x", "y")]
    assert_same(_run(first, x), _run(theirs[0], x))
    assert_same(_run(second, x), _run(theirs[1], x))


class _Copy(Q.Statement):
    """A statement defined outside the package: it declares neither what it reads nor what it writes."""

    label = "Copy"

    def __init__(self, target: str, source: str):
        self.target, self.source = target, source

    def run(self, env, batch):
        env[self.target] = env[self.source] * 1.0


def test_undeclared_statements_count_as_reading_and_writing_everything():
    def build(copy_t, copy_z):
        return Q.Algorithm(
            Q.Input("x"), Q.Var("t", torch.tensor(0.0)), Q.Var("y", torch.tensor(0.0)), Q.Var("z", torch.tensor(0.0)),
            Q.While(Q.LT("x", 3.0), Q.Let("x", lambda x: x + 1.0), Q.Let("t", lambda x: x * 3.0)),
            copy_t,
            Q.If(Q.GT("x", 3.5), if_true=copy_z),
            Q.Output("y"), Q.Output("z"), beta=2.0)

    custom = build(_Copy("y", "t"), _Copy("z", "t"))
    declared = build(Q.Let("y", "t"), Q.Let("z", "t"))
    assert custom.statements[0].live is None and custom.statements[2].written is None
    assert declared.statements[0].live == {"t", "x", "y", "z"} and declared.statements[2].written == ["z"]
    x = torch.tensor([0.5, 2.5, 4.0], dtype=torch.float64)
    assert_same(_run(custom, x), _run(declared, x), tol=1e-12)
