"""Distributions and T-conorms: closed forms against their definitions, axioms, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.render.distributions import DISTRIBUTIONS, cdf, coverage, cutoff_distance
from quintet.render.tconorms import TCONORMS, tconorm

PARAMS = {"hamacher": [0.5, 2.0, 5.0], "frank": [0.5, 3.0], "yager": [0.5, 2.0, 4.0], "aczel_alsina": [0.5, 2.0],
          "dombi": [0.5, 2.0], "schweizer_sklar": [-0.5, -2.0]}
CASES = [(name, p) for name in TCONORMS for p in PARAMS.get(name, [None])]


def _pairwise(name: str, p, a: float, b: float) -> float:
    """Binary T-conorms as the paper defines them (Table 3), written independently of the n-ary forms."""
    if name == "max":
        return max(a, b)
    if name == "probabilistic":
        return a + b - a * b
    if name == "einstein":
        return (a + b) / (1 + a * b)
    x, y = 1 - a, 1 - b  # T-norms of the complements
    if name == "hamacher":
        return 1 - x * y / (p + (1 - p) * (x + y - x * y))
    if name == "frank":
        return 1 - math.log(1 + (p ** x - 1) * (p ** y - 1) / (p - 1), p)
    if name == "yager":
        return min(1.0, (a ** p + b ** p) ** (1 / p))
    if name == "aczel_alsina":
        return 1 - math.exp(-(((-math.log(x)) ** p + (-math.log(y)) ** p) ** (1 / p)))
    if name == "dombi":
        return 1 - 1 / (1 + ((a / x) ** p + (b / y) ** p) ** (1 / p))
    if name == "schweizer_sklar":
        return 1 - (x ** p + y ** p - 1) ** (1 / p)
    raise AssertionError(name)


@pytest.mark.parametrize("name,p", CASES)
def test_tconorm_matches_binary_definition(name, p):
    a = torch.tensor([0.1, 0.3, 0.7, 0.05], dtype=torch.float64)
    b = torch.tensor([0.2, 0.6, 0.4, 0.9], dtype=torch.float64)
    got = tconorm(torch.stack([a, b], -1), name, p)
    want = torch.tensor([_pairwise(name, p, float(x), float(y)) for x, y in zip(a, b)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


unit = st.floats(min_value=0.0, max_value=0.98, allow_nan=False)


@pytest.mark.parametrize("name,p", CASES)
@settings(max_examples=30, deadline=None)
@given(a=unit, b=unit, c=unit)
def test_tconorm_axioms(name, p, a, b, c):
    """Identity 0, commutativity, associativity (n-ary closed form = nested binary) and monotonicity."""
    def t(*xs):
        return float(tconorm(torch.tensor(xs, dtype=torch.float64), name, p))

    assert t(a, 0.0) == pytest.approx(a, abs=1e-9)
    assert t(a, b) == pytest.approx(t(b, a), abs=1e-9)
    assert t(t(a, b), c) == pytest.approx(t(a, t(b, c)), abs=1e-7)
    assert t(a, b, c) == pytest.approx(t(t(a, b), c), abs=1e-7)
    assert t(max(a, c), b) >= t(min(a, c), b) - 1e-9


def test_special_cases_of_hamacher():
    x = torch.rand(5, 7, dtype=torch.float64)
    torch.testing.assert_close(tconorm(x, "hamacher", 1.0), tconorm(x, "probabilistic"))
    torch.testing.assert_close(tconorm(x, "hamacher", 2.0), tconorm(x, "einstein"))


@pytest.mark.parametrize("name,p", CASES)
def test_tconorm_gradcheck(name, p):
    a = (torch.rand(3, 4, dtype=torch.float64) * 0.8 + 0.05).requires_grad_()
    if name == "max":
        a = torch.tensor([[0.1, 0.5, 0.3], [0.7, 0.2, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tconorm(x, name, p), (a,))


def test_tconorm_saturates_without_nan_gradient():
    a = torch.tensor([[1.0, 0.3, 0.0]], dtype=torch.float64, requires_grad=True)
    for name, p in CASES:
        out = tconorm(a, name, p)
        (grad,) = torch.autograd.grad(out.sum(), a)
        assert float(out.detach()) == pytest.approx(1.0, abs=1e-9), name
        assert torch.isfinite(grad).all(), name


@pytest.mark.parametrize("name,p", [("frank", 1.0), ("yager", 0.0), ("schweizer_sklar", 0.5), ("dombi", -1.0),
                                    ("hamacher", -1.0), ("aczel_alsina", float("nan"))])
def test_bad_tconorm_parameter(name, p):
    with pytest.raises(QuintetError, match=name):
        tconorm(torch.rand(3), name, p)


def test_unknown_names():
    with pytest.raises(QuintetError, match="unknown T-conorm 'maximum'"):
        tconorm(torch.rand(3), "maximum")
    with pytest.raises(QuintetError, match="unknown distribution 'normal'"):
        cdf(torch.rand(3), "normal")


# ---------------------------------------------------------------------------------- distributions
SCIPY_FORMS = {
    "uniform": lambda z: min(1.0, max(0.0, (z + 1) / 2)),
    "gaussian": lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))),
    "laplace": lambda z: 0.5 * math.exp(z) if z < 0 else 1 - 0.5 * math.exp(-z),
    "logistic": lambda z: 1 / (1 + math.exp(-z)),
    "gudermannian": lambda z: 2 / math.pi * math.atan(math.exp(z)),
    "cauchy": lambda z: 0.5 + math.atan(z) / math.pi,
    "gumbel_max": lambda z: math.exp(-math.exp(-z)),
    "gumbel_min": lambda z: 1 - math.exp(-math.exp(z)),
    "exponential": lambda z: 1 - math.exp(-z) if z > 0 else 0.0,
    "levy": lambda z: math.erfc(math.sqrt(1 / (2 * z))) if z > 0 else 0.0,
}


@pytest.mark.parametrize("name", sorted(SCIPY_FORMS))
def test_cdf_matches_textbook_form(name):
    zs = [-3.0, -0.7, 0.0, 0.4, 2.5]
    got = cdf(torch.tensor(zs, dtype=torch.float64), name)
    want = torch.tensor([SCIPY_FORMS[name](z) for z in zs], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_gamma_and_reversals_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    z = torch.tensor([-2.0, -0.3, 0.2, 1.5, 4.0], dtype=torch.float64)
    torch.testing.assert_close(cdf(z, "gamma", shape=2.5), torch.as_tensor(stats.gamma(2.5).cdf(z.numpy())))
    torch.testing.assert_close(cdf(z, "gamma_rev", shape=0.7), torch.as_tensor(1 - stats.gamma(0.7).cdf(-z.numpy())))
    torch.testing.assert_close(cdf(z, "levy_rev"), torch.as_tensor(1 - stats.levy().cdf(-z.numpy())))
    torch.testing.assert_close(cdf(z, "wigner_semicircle"), torch.as_tensor(stats.semicircular().cdf(z.numpy())))
    torch.testing.assert_close(cdf(z, "exponential", shift=1.0), torch.as_tensor(stats.expon(loc=-1).cdf(z.numpy())))


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_cdf_is_monotone_bounded(name):
    z = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    f = cdf(z, name, shape=2.0, shift=0.5)
    assert (f >= 0).all() and (f <= 1).all()
    assert (f[1:] >= f[:-1] - 1e-12).all()
    tails = cdf(torch.tensor([-1e7, 1e7], dtype=torch.float64), name, shape=2.0, shift=0.5)
    assert float(tails[0]) < 0.01 and float(tails[1]) > 0.99


@pytest.mark.parametrize("name", sorted(set(DISTRIBUTIONS) - {"hard"}))
@pytest.mark.parametrize("squared", [False, True])
def test_coverage_gradcheck(name, squared):
    s = torch.tensor([-0.013, -0.004, 0.003, 0.011, 0.02], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: coverage(x, name, 0.01, squared, 2.0, 0.5), (s,))


@pytest.mark.parametrize("name", sorted(set(DISTRIBUTIONS) - {"hard"}))
def test_cutoff_distance_bounds_coverage(name):
    """Beyond the cut-off the coverage is at most eps; just inside it is above."""
    tau, eps = 0.01, 1e-6
    cut = cutoff_distance(name, tau, False, 2.0, 0.0, eps)
    if math.isinf(cut):
        assert float(coverage(torch.tensor([-1e3], dtype=torch.float64), name, tau)) > eps
        return
    far = torch.tensor([-(cut * 1.001 + 1e-12), -4 * cut - 1e-9], dtype=torch.float64)
    assert (coverage(far, name, tau) <= eps).all()
    if cut > 0:
        assert float(coverage(torch.tensor([-cut * 0.99], dtype=torch.float64), name, tau)) > eps


def test_finite_support_cutoff_is_tau():
    for name in ("uniform", "cubic_hermite", "wigner_semicircle"):
        assert cutoff_distance(name, 0.05, eps=0.0) == pytest.approx(0.05, rel=1e-6)
    assert cutoff_distance("uniform", 0.04, squared=True, eps=0.0) == pytest.approx(0.2, rel=1e-6)


@pytest.mark.parametrize("name,p", CASES)
def test_many_faces_stay_finite(name, p):
    """Thousands of overlapping faces in float32: no overflow in the products, finite gradients."""
    a = torch.cat([torch.full((3000,), 0.999), torch.full((3000,), 0.3)]).requires_grad_()
    out = tconorm(a, name, p)
    (grad,) = torch.autograd.grad(out, a)
    assert torch.isfinite(out) and 0.99 <= float(out.detach()) <= 1.0
    assert torch.isfinite(grad).all()
