"""Paired seed-by-seed comparison used by ``quintet reproduce segmentation``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ttest_rel

from quintet.core.errors import QuintetError
from quintet.segmentation.metrics import paired_statistics
from quintet.segmentation.report import comparison, comparison_tables, p_text


def test_paired_statistics_values():
    # d = [2, 3, 2, 3, 1]: mean 2.2, var (0.04+0.64+0.04+0.64+1.44)/4 = 0.7, t = 2.2 / sqrt(0.7/5)
    s = paired_statistics([3, 5, 4, 6, 2], [1, 2, 2, 3, 1])
    assert s["n"] == 5 and s["df"] == 4 and s["wins"] == 5
    assert s["mean"] == pytest.approx(2.2)
    assert s["std"] == pytest.approx(math.sqrt(0.7))
    assert s["t"] == pytest.approx(2.2 / math.sqrt(0.7 / 5))
    ref = ttest_rel([3, 5, 4, 6, 2], [1, 2, 2, 3, 1])
    assert s["t"] == pytest.approx(ref.statistic) and s["p"] == pytest.approx(ref.pvalue)


def test_paired_statistics_signs_wins_and_ties():
    s = paired_statistics([1.0, 0.0, 2.0, 2.0], [0.0, 1.0, 2.0, 5.0])  # d = [1, -1, 0, -3]
    assert s["wins"] == 1 and s["mean"] == pytest.approx(-0.75) and s["t"] < 0
    const = paired_statistics([2.0, 3.0], [1.0, 2.0])  # zero spread, positive mean
    assert const["t"] == math.inf and const["p"] == 0.0
    assert math.isnan(paired_statistics([1.0, 2.0], [1.0, 2.0])["t"])


@pytest.mark.parametrize("a, b, match", [
    ([1.0, 2.0], [1.0], "equal length"),
    ([1.0], [2.0], "at least 2"),
    ([1.0, float("nan")], [1.0, 2.0], "finite"),
])
def test_paired_statistics_rejects_bad_input(a, b, match):
    with pytest.raises(QuintetError, match=match):
        paired_statistics(a, b)


def test_comparison_pairs_by_seed_and_averages_targets():
    a = [{"seed": s, "A": 0.2 + 0.01 * s, "B": 0.3} for s in range(3)]
    b = [{"seed": s, "A": 0.2, "B": 0.31 - 0.01 * s} for s in range(3)]
    c = comparison(a, b, ["A", "B"])
    assert [d["mean"] for d in c["per_seed"]] == pytest.approx([-0.005, 0.005, 0.015])
    assert c["stats"]["A"]["mean"] == pytest.approx(0.01)
    assert c["stats"]["mean"]["t"] == pytest.approx(ttest_rel(np.mean([[r["A"], r["B"]] for r in a], 1),
                                                              np.mean([[r["A"], r["B"]] for r in b], 1)).statistic)
    assert c["stats"]["mean"]["wins"] == 2
    per_seed, summary = comparison_tables({"X − Y": c}, ["A", "B"])
    assert "| 1 | +0.5 |" in per_seed and "2 of 3" in summary
    with pytest.raises(QuintetError, match="pair"):
        comparison(a, b[::-1], ["A", "B"])


def test_p_values_below_a_thousandth_are_not_printed_as_zero():
    assert p_text(0.00034) == "< 0.001"
    assert p_text(0.00034, equals=True) == "< 0.001"
    assert p_text(0.0123) == "0.012"
    assert p_text(0.0123, equals=True) == "= 0.012"


def test_leading_records_stop_at_the_first_unfinished_seed():
    from quintet.segmentation.reproduce import leading

    a, b, c = {"seed": 0}, {"seed": 1}, {"seed": 3}
    assert leading([a, b, None, c]) == [a, b]  # seed 3 waits until seed 2 is there: seeds stay paired
    assert leading([a, b, c]) == [a, b, c] and leading([None, a]) == []


def test_unfinished_line_names_finished_of_planned():
    from quintet.segmentation.report import unfinished_line

    assert unfinished_line({}) == ""
    line = unfinished_line({"ERM + meta aug": (1, 3), "variant read T = 0.1": (0, 1)})
    assert "ERM + meta aug 1 of 3" in line and "variant read T = 0.1 0 of 1" in line


def test_summary_rows_of_different_seed_counts_share_one_header():
    runs = [{"seed": i, "a": 0.3 + 0.01 * i, "b": 0.2} for i in range(3)]
    base = [{"seed": i, "a": 0.3, "b": 0.2 + 0.005 * i * i} for i in range(3)]
    per_seed, table = comparison_tables({"x − z": comparison(runs[:2], base[:2], ["a", "b"]),
                                         "x − y": comparison(runs, base, ["a", "b"])}, ["a", "b"])
    assert per_seed.strip().splitlines()[-1].startswith("| 2 | – | ")  # seed 2 of the longer comparison is shown
    header, _, *rows = table.strip().splitlines()
    assert "t (df)" in header and all(r.count("|") == header.count("|") for r in rows)
    assert "(1)" in rows[0] and "(2)" in rows[1]
