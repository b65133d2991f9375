"""Published numbers for the ranking-supervision experiment, each with where it was read.

What is known, with its source
------------------------------
* **Hyper-parameters of the authors' own experiment script** (Felix-Petersen/diffsort,
  ``experiments/main.py`` at commit 31f42e9): Adam, learning rate ``10**-3.5``, batch 100,
  100,000 steps, relaxation ``cauchy`` by default, ``steepness`` 10, ``art_lambda`` 0.25.
* **Two (network, n) -> steepness points** from the authors' README (Felix-Petersen/diffsort,
  ``README.md`` at commit cc7f564): ``-n 5 -m odd_even -s 10`` and ``-n 16 -m bitonic -s 20``.
* **The NeuralSort baseline** on the same four-digit MNIST task: Grover et al., "Stochastic
  Optimization of Sorting Networks via Continuous Relaxations", ICLR 2019 (arXiv 1903.08850),
  Table 1.  arXiv 2105.04019 says (Table 1 caption) that its first rows are taken from Cuturi et
  al. (2019); we quote Grover et al. directly and do not claim that the values are equal.

What is not shown (no number without its source)
-----------------------------------------------
* arXiv 2105.04019 (ICML 2021), Table 1 / Table 2: exact-match and element-wise accuracy of the
  odd-even and bitonic networks for n = 3, 5, 7, 9, 15, 32.
* arXiv 2203.09630 (ICLR 2022), its four-digit MNIST table for the relaxations (logistic, ART,
  reciprocal, Cauchy, optimal).
* The per-n steepness (inverse temperature) tables in the appendices of both papers, and any
  per-n ART lambda other than the script default.
"""

from __future__ import annotations

__all__ = [
    "SCRIPT_DEFAULTS",
    "README_STEEPNESS",
    "INTERPOLATED_STEEPNESS",
    "NEURALSORT_GROVER2019",
    "PAPER_RESULTS",
    "NOT_FOUND",
    "steepness_for",
]

#: Defaults of the authors' experiment script (Felix-Petersen/diffsort ``experiments/main.py``,
#: commit 31f42e9627448071ff603fddc97235ed366b04f5).
SCRIPT_DEFAULTS = {
    "optimizer": "Adam",
    "lr": 10 ** -3.5,
    "batch_size": 100,
    "steps": 100_000,
    "relaxation": "cauchy",
    "steepness": 10.0,
    "art_lambda": 0.25,
    "source": "Felix-Petersen/diffsort experiments/main.py @ 31f42e9",
}

#: ``(network, n) -> steepness`` given by the authors' README commands
#: (Felix-Petersen/diffsort ``README.md``, commit cc7f5642520b8993748895ce714e7e02dc334e4e).
README_STEEPNESS = {
    ("odd_even", 5): 10.0,
    ("bitonic", 16): 20.0,
}

#: Values for the other sizes the experiment uses.  NOT from the papers: the per-n appendix tables
#: could not be found (see the module docstring).  They rise with the network depth between the
#: two README points; replace them with the papers' values once those are available.
INTERPOLATED_STEEPNESS = {
    "odd_even": {3: 10.0, 7: 14.0, 9: 14.0, 15: 20.0, 32: 25.0},
    "bitonic": {3: 10.0, 5: 10.0, 7: 14.0, 9: 14.0, 15: 20.0, 32: 25.0},
}

#: NeuralSort on four-digit MNIST: ``n -> (exact match %, element-wise %)``, deterministic and
#: stochastic variants.  Grover et al., ICLR 2019 (arXiv 1903.08850), Table 1 (reported there as
#: fractions; here times 100).  The paper has no n = 32 column.
NEURALSORT_GROVER2019 = {
    "deterministic": {3: (93.0, 95.1), 5: (83.7, 92.7), 7: (73.8, 90.9), 9: (64.9, 89.6), 15: (38.6, 85.7)},
    "stochastic": {3: (92.7, 95.0), 5: (83.5, 92.6), 7: (74.1, 90.9), 9: (64.6, 89.5), 15: (41.8, 86.2)},
}

#: The diffsort papers' own results, ``(paper, network, relaxation, n) -> (exact %, element-wise %,
#: source such as "Table 1")``.  Empty: the tables could not be read (see :data:`NOT_FOUND`).
PAPER_RESULTS: dict[tuple[str, str, str, int], tuple[float, float, str]] = {}

#: Exactly which published numbers are missing, for results.md and reports.
NOT_FOUND = (
    "arXiv 2105.04019 (ICML 2021) Table 1/2: exact match and element-wise accuracy, odd-even and "
    "bitonic, n = 3, 5, 7, 9, 15, 32",
    "arXiv 2203.09630 (ICLR 2022): four-digit MNIST table for the relaxations (logistic, ART, "
    "reciprocal, Cauchy, optimal), n = 3, 5, 7, 9, 15, 32",
    "per-n steepness tables in the appendices of both papers (and any per-n ART lambda)",
)


def steepness_for(network: str, n: int) -> tuple[float, str]:
    """``(steepness, source)`` for the ranking experiment at ``(network, n)``.

    ``source`` is ``"README"`` for the two sizes the authors' README gives, ``"interpolated"`` for
    the other sizes of the papers' grid (not the papers' values), and ``"default"`` elsewhere
    (10 for n <= 5, else 20, following the README's two points).
    """
    if (network, n) in README_STEEPNESS:
        return README_STEEPNESS[(network, n)], "README"
    table = INTERPOLATED_STEEPNESS.get(network, {})
    if n in table:
        return table[n], "interpolated"
    return (10.0 if n <= 5 else 20.0), "default"
