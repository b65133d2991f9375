"""hard=True runs the discrete algorithm; at large beta every relaxed program equals it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.edit_distance import levenshtein, soft_edit_distance
from quintet.algovision.programs import (
    bubble_sort_program,
    edit_distance_program,
    shortest_path_program,
)
from quintet.algovision.shortest_path import dijkstra, relaxed_shortest_path


def inversions(row: list[float]) -> int:
    return sum(a > b for i, a in enumerate(row) for b in row[i + 1:])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(-50, 50), min_size=2, max_size=7, unique=True), min_size=1, max_size=4)
       .filter(lambda rows: len({len(r) for r in rows}) == 1))
def test_hard_bubble_sort_is_bubble_sort(rows):
    x = torch.tensor(rows, dtype=torch.float64)
    for array, swaps in (bubble_sort_program(5.0, hard=True)(x), relaxed_bubble_sort(x, 5.0, hard=True)):
        assert torch.equal(array, torch.sort(x, 1).values)
        assert swaps.tolist() == [float(inversions(r)) for r in rows]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=6))
def test_relaxed_bubble_sort_invariants(row):
    x = torch.tensor([row], dtype=torch.float64)
    array, swaps = bubble_sort_program(3.0)(x)
    assert torch.allclose(array.sum(), x.sum(), atol=1e-9)  # every relaxed swap keeps the sum
    assert array.min() >= x.min() - 1e-9 and array.max() <= x.max() + 1e-9
    assert 0 <= float(swaps) <= len(row) * (len(row) - 1) / 2 + 1e-9


def test_large_beta_equals_hard():
    x = torch.randperm(9, generator=torch.Generator().manual_seed(0)).double().reshape(1, 9)
    soft, hard = bubble_sort_program(200.0)(x), bubble_sort_program(200.0, hard=True)(x)
    assert torch.allclose(soft[0], hard[0], atol=1e-6) and torch.allclose(soft[1], hard[1], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_shortest_path_is_dijkstra(seed):
    cost = torch.rand(6, 9, 9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 9 + 0.5
    exact, totals = dijkstra(cost.numpy())
    path, dist = relaxed_shortest_path(cost, 1.0, hard=True, iterations=40)
    assert np.array_equal(path.numpy(), exact)
    assert np.allclose(dist[:, -1, -1].numpy() + cost[:, 0, 0].numpy(), totals)
    soft, _ = relaxed_shortest_path(cost, 1e3, iterations=40)
    assert torch.allclose(soft, path, atol=1e-3)


def test_hard_shortest_path_program_matches_function():
    cost = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.2
    a = shortest_path_program(4.0, 12, hard=True)(cost)
    b = relaxed_shortest_path(cost, 4.0, 12, hard=True)
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=6), st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_hard_edit_distance_is_levenshtein(a, b):
    oa = torch.nn.functional.one_hot(torch.tensor([a]), 4).double()
    ob = torch.nn.functional.one_hot(torch.tensor([b]), 4).double()
    assert soft_edit_distance(oa, ob, 1.0, hard=True).item() == levenshtein(a, b)
    assert edit_distance_program(1.0, hard=True)(oa, ob)[0, -1, -1].item() == levenshtein(a, b)
    assert abs(soft_edit_distance(oa, ob, 60.0).item() - levenshtein(a, b)) < 1e-6


def test_levenshtein_known_values():
    assert levenshtein([1, 2, 3], [1, 2, 3]) == 0
    assert levenshtein([1, 2, 3], [3, 2, 1]) == 2
    assert levenshtein([], [1, 1]) == 2
    assert levenshtein([0, 1, 2, 3], [1, 2, 3, 4]) == 2
