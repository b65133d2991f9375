"""Formulas of the relaxations and gradcheck (float64) of every differentiable operation."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.autograd import gradcheck

import quintet.algovision as Q
from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.edit_distance import soft_edit_distance
from quintet.algovision.functional import index_weights, soft_if, soft_read, soft_while, soft_write
from quintet.algovision.programs import bubble_sort_program, shortest_path_program
from quintet.algovision.shortest_path import relaxed_shortest_path

GEN = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float64, requires_grad=True)


def test_condition_formulas():
    a, b = torch.tensor([0.3], dtype=torch.float64), torch.tensor([-0.2], dtype=torch.float64)
    assert math.isclose(Q.soft_gt(a, b, 4.0).item(), 1 / (1 + math.exp(-2.0)))
    assert math.isclose(Q.soft_lt(a, b, 4.0).item(), 1 / (1 + math.exp(2.0)))
    assert math.isclose(Q.soft_eq(a, b, 4.0).item(), 1 / math.cosh(1.0) ** 2)
    assert Q.soft_eq(a, a, 4.0).item() == 1.0
    assert math.isclose(Q.soft_or(torch.tensor(0.3), torch.tensor(0.5)).item(), 0.65, rel_tol=1e-6)
    assert math.isclose(Q.soft_min(a, b, beta=1e4).item(), -0.2) and math.isclose(Q.soft_max(a, b, beta=1e4).item(), 0.3)
    assert torch.allclose(Q.soft_argmin(a, b, beta=2.0), torch.softmax(torch.tensor([[-0.6, 0.4]], dtype=torch.float64), -1))


@pytest.mark.parametrize("fn", [Q.soft_gt, Q.soft_lt, Q.soft_eq, Q.soft_neq])
def test_gradcheck_conditions(fn):
    assert gradcheck(lambda a, b: fn(a, b, 2.5), (rnd(5), rnd(5)))


@pytest.mark.parametrize("fn", [Q.soft_min, Q.soft_max, Q.soft_argmin, Q.soft_argmax])
def test_gradcheck_extrema(fn):
    assert gradcheck(lambda a, b, c: fn(a, b, c, beta=1.5), (rnd(4), rnd(4), rnd(4)))


def test_gradcheck_soft_if_and_indexing():
    p = torch.rand(4, generator=GEN, dtype=torch.float64).requires_grad_()
    assert gradcheck(lambda p, a, b: soft_if(p, a, b), (p, rnd(4, 3), rnd(4, 3)))
    pos = (torch.rand(4, generator=GEN, dtype=torch.float64) * 5).requires_grad_()
    assert gradcheck(lambda pos, x: soft_read(x, index_weights(pos, 6, 3.0)), (pos, rnd(4, 6, 2)))
    assert gradcheck(lambda pos, x, v: soft_write(x, index_weights(pos, 6, 3.0), v), (pos, rnd(4, 6), rnd(4)))


def test_index_weights_are_a_relaxed_one_hot():
    w = index_weights(torch.tensor([0.0, 2.0, 4.9]), 6, 200.0)
    assert torch.allclose(w, torch.nn.functional.one_hot(torch.tensor([0, 2, 5]), 6).float(), atol=1e-6)
    pos = torch.rand(10, dtype=torch.float64) * 5  # the weights telescope: mass outside [-0.5, 5.5] is cut
    total = torch.sigmoid(2.0 * (pos + 0.5)) - torch.sigmoid(2.0 * (pos - 5.5))
    assert torch.allclose(index_weights(pos, 6, 2.0).sum(-1), total)


def test_soft_while_closed_form():
    """x doubles while x < 4: from x = 1 the stop after k steps has probability p0..p_{k-1}(1 - p_k)."""
    x = torch.tensor([1.0], dtype=torch.float64)
    (out,) = soft_while(lambda x: Q.soft_lt(x, 4.0, 1.0), lambda x: (2 * x,), (x,))
    p = [1 / (1 + math.exp(v - 4.0)) for v in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)]
    expected, go = 0.0, 1.0
    for k, v in enumerate((1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)):
        expected += go * (1 - p[k]) * v
        go *= p[k]
    assert abs(out.item() - expected) < 1e-3
    assert gradcheck(lambda x: soft_while(lambda x: Q.soft_lt(x, 4.0, 1.0), lambda x: (2 * x,), (x,))[0],
                     (torch.tensor([1.3, 0.7], dtype=torch.float64, requires_grad=True),))


def test_gradcheck_programs():
    with warnings.catch_warnings():
        warnings.simplefilter("error", Q.MaxIterationsWarning)
        assert gradcheck(lambda x: bubble_sort_program(2.0)(x), (rnd(2, 4),))
        cost = (torch.rand(2, 4, 3, generator=GEN, dtype=torch.float64) + 0.5).requires_grad_()
        assert gradcheck(lambda c: shortest_path_program(2.0, 5)(c), (cost,))


def test_gradcheck_fast_bubble_sort():
    assert gradcheck(lambda x: relaxed_bubble_sort(x, 2.0), (rnd(3, 5),))


def test_gradcheck_fast_shortest_path():
    cost = (torch.rand(2, 5, 4, generator=GEN, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    assert gradcheck(lambda c: relaxed_shortest_path(c, 2.0, 6), (cost,))
    assert gradcheck(lambda c: relaxed_shortest_path(c, 2.0, 6)[0], (cost,))  # one output unused


def test_gradcheck_edit_distance():
    a = torch.softmax(torch.randn(2, 3, 4, generator=GEN, dtype=torch.float64), -1).requires_grad_()
    b = torch.softmax(torch.randn(2, 4, 4, generator=GEN, dtype=torch.float64), -1).requires_grad_()
    assert gradcheck(lambda a, b: soft_edit_distance(a, b, 3.0), (a, b))


def test_while_reports_max_iter():
    alg = Q.Algorithm(Q.Input("x"), Q.While(Q.LT("x", 100.0), Q.Let("x", lambda x: x + 1)), Q.Output("x"),
                      beta=5.0, max_iter=3)
    with pytest.warns(Q.MaxIterationsWarning, match="max_iter=3"):
        out = alg(torch.zeros(2))
    assert torch.allclose(out, torch.full((2,), 3.0), atol=1e-6)
