"""Published numbers: every steepness says where it comes from; results.md shows the papers'
columns and names what is missing instead of inventing it."""

from __future__ import annotations

from quintet.sorting.cli import _paper_columns, _results_markdown
from quintet.sorting.paper_numbers import (
    INTERPOLATED_STEEPNESS,
    NEURALSORT_GROVER2019,
    NOT_FOUND,
    README_STEEPNESS,
    steepness_for,
)
from quintet.sorting.ranking import RankingConfig


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
    row = {"network": "odd_even", "n": 5, "relaxation": "cauchy", "steepness": 10.0,
           "steepness_source": "README", "steps": 7, "exact_match": 0.25, "element_wise": 0.5,
           "seconds": 1.0, **_paper_columns("odd_even", "cauchy", 5)}
    md = _results_markdown([row], quick=True)
    assert "paper exact match %" in md and "arXiv 2203.09630" in md
    assert "83.7 / 92.7" in md and "10 (README)" in md
    for item in NOT_FOUND:
        assert item in md
    assert _paper_columns("bitonic", "logistic", 32)["paper"] == "arXiv 2105.04019"
    assert _paper_columns("bitonic", "logistic", 32)["neuralsort_exact_match"] is None
