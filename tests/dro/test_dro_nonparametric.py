"""Non-parametric KL, chi-square and CVaR adversaries (the baselines of the authors' non_param_dro.py)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.dro import cvar_loss
from quintet.dro.nonparametric import (
    best_response,
    chi2_best_response,
    chi2_divergence,
    cvar_best_response,
    kl_best_response,
    kl_divergence,
    nonparametric_loss,
)

losses_st = st.lists(st.floats(0.01, 5.0), min_size=8, max_size=64).map(lambda v: torch.tensor(v, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(losses_st, st.floats(0.05, 1.0))
def test_kl_response_sits_on_the_ball(losses, kappa):
    q = kl_best_response(losses, kappa)
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-9) and bool((q >= 0).all())
    reachable = math.log(len(losses))  # all mass on one example
    if losses.max() - losses.min() > 0.5 and kappa < 0.5 * reachable:
        assert float(kl_divergence(q)) == pytest.approx(kappa, abs=1e-3)
    assert float((q * losses).sum()) >= float(losses.mean()) - 1e-9  # the adversary never lowers the risk


@settings(max_examples=40, deadline=None)
@given(losses_st, st.floats(0.05, 2.0))
def test_chi2_response_sits_on_the_ball(losses, rho):
    q = chi2_best_response(losses, rho)
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-9) and bool((q >= 0).all())
    if len(losses) > 1 + 2 * rho and (losses.max() - losses.min()) / losses.max() > 1e-5:
        assert float(chi2_divergence(q)) <= rho + 1e-2
    assert float((q * losses).sum()) >= float(losses.mean()) - 1e-9


def test_chi2_closed_form_two_levels():
    # half the losses at 2, half at 1: q = relu(l - eta) / sum; the ball rho = 1/8 is met by
    # q_high = 3 / (2N), q_low = 1 / (2N): chi2 = 0.5 * mean((N q - 1)^2) = 0.5 * 0.25 = 0.125
    losses = torch.tensor([2.0] * 10 + [1.0] * 10, dtype=torch.float64)
    q = chi2_best_response(losses, 0.125)
    assert torch.allclose(q[:10], torch.full((10,), 3 / 40, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(q[10:], torch.full((10,), 1 / 40, dtype=torch.float64), atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(losses_st, st.floats(0.01, 1.0))
def test_cvar_response_matches_cvar_loss(losses, alpha):
    q = cvar_best_response(losses, alpha)
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-9)
    assert float(q.max()) <= 1 / (alpha * len(losses)) + 1e-12
    assert float((q * losses).sum()) == pytest.approx(float(cvar_loss(losses, alpha)), rel=1e-9)


@pytest.mark.parametrize("kind,size", [("kl", 0.5), ("chi2", 0.5), ("cvar", 0.3)])
def test_gradient_is_that_of_the_response_at_fixed_constants(kind, size):
    """The solved temperature / threshold is a constant for the gradient (as in the authors' code):
    the gradient equals that of sum(q(l) l) with the constant frozen, which gradcheck verifies."""
    torch.manual_seed(0)
    losses = (torch.rand(16, dtype=torch.float64) * 3 + 0.1).requires_grad_()
    (grad,) = torch.autograd.grad(nonparametric_loss(kind, losses, size), losses)
    with torch.no_grad():
        q = best_response(kind, losses, size)
    if kind == "kl":
        log_q, l0 = torch.log(q), losses.detach()
        tau = float((l0[0] - l0[1]) / (log_q[0] - log_q[1]))
        frozen = lambda v: (torch.softmax(v / tau, 0) * v).sum()  # noqa: E731
    elif kind == "chi2":
        support = q > 0
        # recover eta from q ∝ l - eta on the support: q_i / q_j = (l_i - eta) / (l_j - eta)
        i, j = torch.nonzero(support).flatten()[:2]
        r = float(q[i] / q[j])
        l0 = losses.detach()
        eta = float((l0[i] - r * l0[j]) / (1 - r))
        frozen = lambda v: (torch.relu(v - eta) / torch.relu(v - eta).sum() * v).sum()  # noqa: E731
    else:
        frozen = lambda v: (q * v).sum()  # noqa: E731
    assert torch.autograd.gradcheck(frozen, (losses.detach().clone().requires_grad_(),))
    (expected,) = torch.autograd.grad(frozen(losses), losses)
    assert torch.allclose(grad, expected, atol=1e-6)


def test_bad_inputs():
    with pytest.raises(QuintetError, match="kappa must be a positive number"):
        kl_best_response(torch.ones(4), 0.0)
    with pytest.raises(QuintetError, match="NaN"):
        chi2_best_response(torch.tensor([1.0, float("nan")]), 1.0)
    with pytest.raises(QuintetError, match="non-parametric adversary"):
        best_response("tv", torch.ones(4), 1.0)
    # equal losses: the uniform response
    assert torch.equal(chi2_best_response(torch.ones(5), 1.0), torch.full((5,), 0.2))
