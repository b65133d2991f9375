"""Bad programs and bad inputs raise QuintetError with one line naming the statement."""

from __future__ import annotations

import pytest
import torch

import quintet.algovision as Q
from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.edit_distance import soft_edit_distance
from quintet.algovision.functional import soft_if, soft_read
from quintet.algovision.shortest_path import dijkstra, relaxed_shortest_path
from quintet.core.errors import QuintetError


def run(*statements, inputs=(torch.zeros(3),), **kw):
    decls = [Q.Input("x"), Q.Var("y", torch.tensor(0.0)), Q.Var("v", torch.zeros(4))]
    return Q.Algorithm(*decls, *statements, Q.Output("y"), **kw)(*inputs)


def raises(match):
    return pytest.raises(QuintetError, match=match)


def test_unknown_variable_names_the_statement():
    with raises(r"Let\('y', lambda z\): unknown variable 'z'"):
        run(Q.Let("y", lambda z: z))
    with raises(r"GT\('nope', 0.0\): unknown variable 'nope'"):
        run(Q.If(Q.GT("nope", 0.0), if_true=Q.Let("y", 1.0)))
    with raises(r"unknown variable 'w'"):
        run(Q.Let("w", 1.0))


def test_non_scalar_condition():
    with raises(r"If\(GT\('v', 0.0\)\): the condition has shape \(3, 4\), more dimensions than variable 'y'"):
        run(Q.If(Q.GT("v", 0.0), if_true=Q.Let("y", 1.0)))
    with raises(r"expected one probability per batch element, shape \(3,\)"):
        run(Q.If(Q.GT(lambda x: x.sum(), 0.0), if_true=Q.Let("y", 1.0)))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf"), "5"])
def test_bad_beta(beta):
    with raises("beta must be a finite number > 0"):
        run(beta=beta)
    with raises("beta must be a finite number > 0"):
        Q.GT("x", 0.0, beta=beta)


def test_mismatched_batch_sizes():
    alg = Q.Algorithm(Q.Input("a"), Q.Input("b"), Q.Let("a", "b"), Q.Output("a"))
    with raises(r"Input\('b'\): batch size 4 does not match 3 of Input\('a'\)"):
        alg(torch.zeros(3), torch.zeros(4))
    with raises("expected 2 inputs"):
        alg(torch.zeros(3))


def test_bad_declarations_and_statements():
    with raises("invalid variable name '1x'"):
        Q.Var("1x", torch.zeros(1))
    with raises("declared twice"):
        Q.Algorithm(Q.Input("x"), Q.Var("x", torch.zeros(1)), Q.Output("x"))
    with raises("needs at least one Input and one Output"):
        Q.Algorithm(Q.Input("x"))
    with raises("expected a condition"):
        Q.If(lambda x: x > 0)
    with raises("expected a statement"):
        Q.If(Q.GT("x", 0.0), if_true=[42])
    with raises("unsupported arguments"):
        Q.Let("a", 1, 2, 3, 4)
    with raises("max_iter must be an int >= 1"):
        run(max_iter=0)
    with raises("integer variables hold an int or a list of ints"):
        Q.VarInt("n", 1.5)


def test_bad_writes():
    with raises(r"value of shape \(3, 2\) cannot be written to 'y' of shape \(3,\)"):
        run(Q.Let("y", lambda x: torch.zeros(3, 2)))
    with raises("the branches assign different values to the hard variable 'n'"):
        Q.Algorithm(Q.Input("x"), Q.VarInt("n", 0), Q.If(Q.GT("x", 0.0), if_true=Q.LetInt("n", 1)),
                    Q.Output("x"))(torch.randn(3))
    with raises("index 7 is out of range"):
        run(Q.Let("v", [7], 1.0), Q.Let("y", "v", [7]))
    with raises("the loop variable 'x' already exists"):
        run(Q.For("x", 3, Q.Let("y", 1.0)))
    with raises("probabilities must lie in"):
        run(Q.Let("y", 2.0), Q.If(Q.IsTrue("y"), if_true=Q.Let("y", 1.0)))


def test_functional_errors():
    with raises(r"relaxed_bubble_sort: expected a float tensor \(batch, n\)"):
        relaxed_bubble_sort(torch.ones(4), 1.0)
    with raises("beta must be > 0"):
        relaxed_shortest_path(torch.ones(1, 3, 3), 0.0)
    with raises("cost contains NaN"):
        relaxed_shortest_path(torch.full((1, 3, 3), float("nan")), 1.0)
    with raises(r"cost must be a float tensor \(batch, height, width\)"):
        relaxed_shortest_path(torch.ones(3, 3), 1.0)
    with raises("finite positive costs"):
        dijkstra(torch.zeros(1, 3, 3).numpy())
    with raises("equal batch and classes"):
        soft_edit_distance(torch.ones(2, 3, 4), torch.ones(3, 3, 4), 1.0)
    with raises("the branches give 2 and 1 values"):
        soft_if(torch.ones(2), (torch.ones(2), torch.ones(2)), torch.ones(2))
    with raises(r"weights of shape \(2, 5\) do not match"):
        soft_read(torch.ones(2, 4), torch.ones(2, 5))
