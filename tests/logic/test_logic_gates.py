"""The 16 gates: truth tables, their relaxations, and the four-coefficient form."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.logic.gates import (
    GATE_NAMES,
    gate_coefficients,
    gate_mixture,
    relaxed_gate,
    truth_tables,
)

BOOLEAN = {
    "false": lambda a, b: 0, "and": lambda a, b: a & b, "a_and_not_b": lambda a, b: a & (1 - b),
    "a": lambda a, b: a, "b_and_not_a": lambda a, b: b & (1 - a), "b": lambda a, b: b,
    "xor": lambda a, b: a ^ b, "or": lambda a, b: a | b, "nor": lambda a, b: 1 - (a | b),
    "xnor": lambda a, b: 1 - (a ^ b), "not_b": lambda a, b: 1 - b, "b_implies_a": lambda a, b: a | (1 - b),
    "not_a": lambda a, b: 1 - a, "a_implies_b": lambda a, b: (1 - a) | b, "nand": lambda a, b: 1 - (a & b),
    "true": lambda a, b: 1,
}


def test_truth_tables_match_boolean_definitions():
    table = truth_tables()
    for gate, name in enumerate(GATE_NAMES):
        expected = [BOOLEAN[name](a, b) for a, b in itertools.product((0, 1), repeat=2)]
        assert table[gate].tolist() == expected, name
    # gate id = truth table over AB = 00, 01, 10, 11 read as a binary number, 00 most significant
    ids = (table * torch.tensor([8, 4, 2, 1])).sum(1)
    assert ids.tolist() == list(range(16))


def test_relaxation_is_the_expectation_under_independent_bernoulli_inputs():
    a, b = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    probs = {(0, 0): (1 - a) * (1 - b), (0, 1): (1 - a) * b, (1, 0): a * (1 - b), (1, 1): a * b}
    table = truth_tables()
    for gate in range(16):
        expectation = sum(table[gate, 2 * i + j] * probs[(i, j)] for i, j in probs)
        assert torch.allclose(relaxed_gate(a, b, gate), expectation, atol=1e-12)


def test_reference_package_relaxations_agree(difflogic):
    from difflogic.functional import bin_op

    a, b = torch.rand(50, dtype=torch.float64), torch.rand(50, dtype=torch.float64)
    for gate in range(16):
        assert torch.allclose(relaxed_gate(a, b, gate), bin_op(a, b, gate), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=16, max_size=16), st.floats(0, 1), st.floats(0, 1))
def test_mixture_equals_sixteen_term_sum(logits, a, b):
    p = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
    a_t, b_t = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    direct = sum(p[i] * relaxed_gate(a_t, b_t, i) for i in range(16))
    assert torch.allclose(gate_mixture(a_t, b_t, p), direct, atol=1e-12)
    assert -1e-12 <= float(gate_mixture(a_t, b_t, p)) <= 1 + 1e-12  # a mixture of probabilities


def test_coefficient_table_shape_and_dtype():
    c = gate_coefficients(torch.float64)
    assert c.shape == (16, 4) and c.dtype == torch.float64
    assert c[1].tolist() == [0, 0, 0, 1]  # and = ab
