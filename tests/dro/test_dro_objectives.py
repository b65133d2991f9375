"""Values, gradients and invariants of the robust objectives (quintet.dro.objectives)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.dro import (
    GroupDRO,
    batch_kl,
    batch_weights,
    cvar_loss,
    ratio_dro_objectives,
    ratio_dro_value,
    self_normalized_objectives,
    uniform_group_loss,
)

floats = st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=40)


@settings(max_examples=50, deadline=None)
@given(floats)
def test_batch_weights_sum_to_batch_size_and_kl_nonnegative(values):
    r = torch.tensor(values, dtype=torch.float64)
    w = batch_weights(r)
    assert torch.all(w >= 0)
    assert float(w.sum()) == pytest.approx(len(values), rel=1e-9)
    kl = float(batch_kl(r))
    assert kl >= -1e-12
    # KL(q || uniform) = mean(w log w) (paper Eq. 6), and at most log B
    assert kl == pytest.approx(float((w * torch.log(w.clamp_min(1e-300))).mean()), abs=1e-9)
    assert kl <= math.log(len(values)) + 1e-9


@settings(max_examples=30, deadline=None)
@given(floats, st.floats(-3, 3))
def test_weights_invariant_to_shift(values, shift):
    r = torch.tensor(values, dtype=torch.float64)
    assert torch.allclose(batch_weights(r), batch_weights(r + shift))


def test_uniform_adversary_gives_erm():
    losses = torch.tensor([0.1, 2.0, 0.5, 1.5])
    model_loss, adv_loss = ratio_dro_objectives(losses, torch.zeros(4), tau=0.01)
    assert float(model_loss) == pytest.approx(float(losses.mean()))
    assert float(adv_loss) == pytest.approx(-float(losses.mean()))  # KL = 0


def test_ratio_objectives_values():
    losses = torch.tensor([1.0, 3.0])
    r = torch.tensor([0.0, math.log(3.0)])  # q = (1/4, 3/4), w = (1/2, 3/2)
    m, a = ratio_dro_objectives(losses, r, tau=0.5)
    assert float(m) == pytest.approx((0.5 * 1 + 1.5 * 3) / 2)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert float(a) == pytest.approx(-(2.5 - 0.5 * kl))


def test_players_get_separate_gradients():
    """The model's loss must not move the adversary and vice versa (simultaneous updates)."""
    theta = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    psi = torch.tensor([0.1, 0.4, -0.3], requires_grad=True)
    losses = theta**2
    m, a = ratio_dro_objectives(losses, psi * 2, tau=0.1)
    gm_psi = torch.autograd.grad(m, psi, retain_graph=True, allow_unused=True)[0]
    ga_theta = torch.autograd.grad(a, theta, retain_graph=True, allow_unused=True)[0]
    assert gm_psi is None or torch.all(gm_psi == 0)
    assert ga_theta is None or torch.all(ga_theta == 0)
    # the adversary raises the weight of the largest loss
    ga_psi = torch.autograd.grad(a, psi)[0]
    assert int(torch.argmin(ga_psi)) == int(torch.argmax(losses.detach()))


def test_gradcheck_ratio_objectives():
    torch.manual_seed(0)
    losses = torch.rand(6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(6, dtype=torch.float64, requires_grad=True)

    assert torch.autograd.gradcheck(lambda loss, rr: ratio_dro_value(loss, rr, tau=0.3), (losses, r))
    assert torch.autograd.gradcheck(lambda rr: batch_kl(rr), (r,))
    # each player's loss carries exactly its partial gradient of the game value
    m, a = ratio_dro_objectives(losses, r, tau=0.3)
    g_value_l, g_value_r = torch.autograd.grad(ratio_dro_value(losses, r, tau=0.3), (losses, r))
    assert torch.allclose(torch.autograd.grad(m, losses)[0], g_value_l)
    assert torch.allclose(torch.autograd.grad(a, r)[0], -g_value_r)


def test_self_normalized_at_zero_is_erm():
    losses = torch.tensor([0.5, 1.0, 2.0])
    m, a = self_normalized_objectives(losses, torch.zeros(3), tau=0.01, beta=1.0)
    assert float(m) == pytest.approx(float(losses.mean()))
    assert float(a) == pytest.approx(-float(losses.mean()))


def test_self_normalized_values():
    """Hand computation at r != 0: w = exp r, KL = mean(w r), penalty beta (log mean exp r)^2."""
    losses = torch.tensor([1.0, 3.0], dtype=torch.float64)
    r = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)  # w = (1, 3), mean(w) = 2
    m, a = self_normalized_objectives(losses, r, tau=0.5, beta=2.0)
    weighted = (1 * 1 + 3 * 3) / 2
    kl = (1 * 0 + 3 * math.log(3.0)) / 2
    penalty = 2.0 * math.log(2.0) ** 2
    assert float(m) == pytest.approx(weighted, rel=1e-12)
    assert float(a) == pytest.approx(-(weighted - 0.5 * kl - penalty), rel=1e-12)
    # beta = 0 drops exactly the penalty
    _, a0 = self_normalized_objectives(losses, r, tau=0.5, beta=0.0)
    assert float(a) - float(a0) == pytest.approx(penalty, rel=1e-12)


def test_gradcheck_self_normalized_objectives():
    torch.manual_seed(1)
    losses = torch.rand(6, dtype=torch.float64, requires_grad=True)
    r = (0.5 * torch.randn(6, dtype=torch.float64)).requires_grad_()
    # each player's loss is differentiated in its own argument (the other one is detached inside)
    assert torch.autograd.gradcheck(
        lambda loss: self_normalized_objectives(loss, r.detach(), tau=0.3, beta=1.5)[0], (losses,))
    assert torch.autograd.gradcheck(
        lambda rr: self_normalized_objectives(losses.detach(), rr, tau=0.3, beta=1.5)[1], (r,))
    m, a = self_normalized_objectives(losses, r, tau=0.3, beta=1.5)
    assert torch.autograd.grad(m, r, retain_graph=True, allow_unused=True)[0] is None
    assert torch.autograd.grad(a, losses, allow_unused=True)[0] is None


def test_self_normalized_bad_input():
    with pytest.raises(QuintetError, match="beta"):
        self_normalized_objectives(torch.ones(3), torch.zeros(3), beta=-0.1)
    with pytest.raises(QuintetError, match="tau"):
        self_normalized_objectives(torch.ones(3), torch.zeros(3), tau=0.0)
    with pytest.raises(QuintetError, match="shape"):
        self_normalized_objectives(torch.ones(3), torch.zeros(4))


def test_cvar_values():
    losses = torch.tensor([1.0, 4.0, 2.0, 3.0])
    assert float(cvar_loss(losses, 1.0)) == pytest.approx(2.5)
    assert float(cvar_loss(losses, 0.5)) == pytest.approx(3.5)
    assert float(cvar_loss(losses, 0.25)) == pytest.approx(4.0)
    # alpha B = 1.5: all of the top loss and half of the next, over 1.5
    assert float(cvar_loss(losses, 0.375)) == pytest.approx((4 + 0.5 * 3) / 1.5)


@settings(max_examples=40, deadline=None)
@given(floats, st.floats(0.05, 1.0))
def test_cvar_matches_dual_form(values, alpha):
    """CVaR_a = min_eta eta + mean((l - eta)_+) / a (Rockafellar-Uryasev), eta over the losses."""
    losses = torch.tensor(values, dtype=torch.float64)
    dual = min(float(e + torch.clamp(losses - e, min=0).mean() / alpha) for e in losses)
    assert float(cvar_loss(losses, alpha)) == pytest.approx(dual, rel=1e-7, abs=1e-9)
    assert float(losses.mean()) - 1e-9 <= float(cvar_loss(losses, alpha)) <= float(losses.max()) + 1e-9


def test_gradcheck_cvar():
    losses = torch.tensor([0.3, 1.2, 0.7, 2.2, 0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda loss: cvar_loss(loss, 0.5), (losses,))


def test_group_dro_moves_mass_to_worst_group():
    gdro = GroupDRO(n_groups=3, eta_q=0.5)
    losses = torch.tensor([0.1, 0.1, 2.0, 2.0, 0.5])
    groups = torch.tensor([0, 0, 1, 1, 2])
    loss = gdro.loss(losses, groups)
    q = torch.exp(0.5 * torch.tensor([0.1, 2.0, 0.5], dtype=torch.float64))
    q = q / q.sum()
    assert torch.allclose(gdro.q, q)
    assert float(loss) == pytest.approx(float((q * torch.tensor([0.1, 2.0, 0.5], dtype=torch.float64)).sum()), rel=1e-6)
    # a group absent from the batch keeps its logit
    gdro.loss(torch.tensor([1.0]), torch.tensor([0]))
    assert gdro.q.argmax() == 1


def test_uniform_group_loss():
    losses = torch.tensor([1.0, 1.0, 1.0, 5.0])
    groups = torch.tensor([0, 0, 0, 3])
    assert float(uniform_group_loss(losses, groups, 4)) == pytest.approx(3.0)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(QuintetError, match="alpha"):
        cvar_loss(torch.ones(3), alpha)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf")])
def test_bad_tau(tau):
    with pytest.raises(QuintetError, match="tau"):
        ratio_dro_objectives(torch.ones(3), torch.zeros(3), tau)


def test_shape_mismatch():
    with pytest.raises(QuintetError, match="shape"):
        ratio_dro_objectives(torch.ones(3), torch.zeros(4))
    with pytest.raises(QuintetError, match="1-D"):
        batch_weights(torch.zeros(2, 2))
