"""Published numbers: every steepness says where it comes from; results.md shows the papers'
columns and names what is missing instead of inventing it."""

from __future__ import annotations

from quintet.sorting.paper_numbers import (
    INTERPOLATED_STEEPNESS,
    NEURALSORT_GROVER2019,
    NOT_FOUND,
    README_STEEPNESS,
    steepness_for,
)
from quintet.sorting.ranking import RankingConfig
from quintet.sorting.report import paper_columns, protocol_markdown


def test_steepness_sources():
    assert steepness_for("odd_even", 5) == (10.0, "README")
    assert steepness_for("bitonic", 16) == (20.0, "README")
    assert steepness_for("bitonic", 32) == (INTERPOLATED_STEEPNESS["bitonic"][32], "interpolated")
    assert steepness_for("odd_even", 100) == (20.0, "default")
    assert not set(README_STEEPNESS) & {(net, n) for net, t in INTERPOLATED_STEEPNESS.items() for n in t}
    assert RankingConfig(n=5).beta_and_source() == (10.0, "README")
    assert RankingConfig(n=5, steepness=3.0).beta_and_source() == (3.0, "given")


def test_neuralsort_reference_values():
    # Grover et al. 2019, Table 1 (fractions there, percent here)
    assert NEURALSORT_GROVER2019["deterministic"][5] == (83.7, 92.7)
    assert NEURALSORT_GROVER2019["stochastic"][15] == (41.8, 86.2)
    assert set(NEURALSORT_GROVER2019["deterministic"]) == {3, 5, 7, 9, 15}


def test_results_markdown_has_paper_columns():
    row = {"network": "odd_even", "n": 5, "relaxation": "cauchy", "steepness": 10.0, "batch_size": 100,
           "steepness_source": "README", "steps": 700, "fraction_of_paper_steps": 0.007, "best_step": 600,
           "exact_match": 0.25, "element_wise": 0.5, "train_seconds": 1.0, "valid_exact_match": 0.3,
           "test_sets": 500, "valid_sets": 1000, "eval_every": 100, **paper_columns("odd_even", "cauchy", 5)}
    md = protocol_markdown([row], scale="test scale")
    assert "700 (0.70 %)" in md and "70,000" in md  # steps and sets seen, against 100 000 steps
    assert "test: 500 sets" in md and "| 600 |" in md
    assert "not shown (arXiv 2203.09630)" in md
    assert "83.7 / 92.7" in md and "10 (README)" in md
    for item in NOT_FOUND:
        assert item in md
    assert paper_columns("bitonic", "logistic", 32)["paper"] == "arXiv 2105.04019"
    assert paper_columns("bitonic", "logistic", 32)["neuralsort_exact_match"] is None
