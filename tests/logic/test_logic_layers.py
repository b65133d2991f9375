"""LogicLayer, GroupSum and the fused function: gradcheck, the difflogic oracle, wiring, init."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.core.io import load_tensors, save_tensors
from quintet.logic.functional import group_sum, logic_layer, neuron_coefficients
from quintet.logic.gates import gate_mixture
from quintet.logic.layers import GroupSum, LogicLayer, init_logits, logic_network
from quintet.logic.wiring import make_wiring, random_wiring, unique_wiring


def _layer_inputs(batch=5, in_dim=9, out_dim=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, in_dim, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(out_dim, 16, generator=g, dtype=torch.float64, requires_grad=True)
    ia, ib = random_wiring(in_dim, out_dim, g)
    return x, w, ia, ib


def test_gradcheck_fused_layer():
    x, w, ia, ib = _layer_inputs()
    assert torch.autograd.gradcheck(lambda x, w: logic_layer(x, w, ia, ib), (x, w))


def test_grad_factor_scales_only_the_input_gradient():
    x, w, ia, ib = _layer_inputs()
    g = torch.randn(5, 7, dtype=torch.float64)
    gx1, gw1 = torch.autograd.grad(logic_layer(x, w, ia, ib), (x, w), g)
    gx2, gw2 = torch.autograd.grad(logic_layer(x, w, ia, ib, grad_factor=2.5), (x, w), g)
    assert torch.allclose(gx2, 2.5 * gx1) and torch.allclose(gw2, gw1)


def test_fused_layer_equals_the_plain_mixture():
    x, w, ia, ib = _layer_inputs(batch=6, in_dim=12, out_dim=10)
    plain = gate_mixture(x[:, ia], x[:, ib], torch.softmax(w, -1))
    assert torch.allclose(logic_layer(x, w, ia, ib), plain, atol=1e-12)


def test_gradcheck_group_sum():
    x = torch.rand(3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: group_sum(x, 4, 2.0), (x,))
    assert torch.allclose(group_sum(x, 3, 2.0), x.reshape(3, 3, 4).sum(-1) / 2)


def _copy_into_reference(ours: LogicLayer, difflogic, grad_factor=1.0):
    ref = difflogic.LogicLayer(ours.in_dim, ours.out_dim, device="cpu", implementation="python",
                               grad_factor=grad_factor)
    ref.weights.data.copy_(ours.weights.data)
    ref.indices = (ours.idx_a.clone(), ours.idx_b.clone())
    return ref


@pytest.mark.parametrize("training", [True, False])
def test_oracle_outputs_and_gradients(difflogic, training):
    torch.manual_seed(0)
    ours = LogicLayer(64, 96, connections="random", grad_factor=1.5).train(training)
    ref = _copy_into_reference(ours, difflogic, 1.5).train(training)
    x1 = torch.rand(33, 64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    with contextlib.redirect_stdout(io.StringIO()):
        y_ref = ref(x2)
    y = ours(x1)
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    with contextlib.redirect_stdout(io.StringIO()):
        y_ref.backward(g)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    if training:
        assert torch.allclose(ours.weights.grad, ref.weights.grad, atol=1e-5)


def test_oracle_whole_network(difflogic):
    from quintet.logic.bench import peer_copy

    model = logic_network(100, 200, 3, 5, tau=3.0, seed=0).train()
    ref = peer_copy(model)
    x = torch.rand(17, 100)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = ref(x)
        expected.sum().backward()
    out = model(x)
    out.sum().backward()
    assert torch.allclose(out, expected, atol=1e-5)
    for ours, theirs in zip([m for m in model if isinstance(m, LogicLayer)], [m for m in ref if hasattr(m, "weights")]):
        assert torch.allclose(ours.weights.grad, theirs.weights.grad, atol=1e-5)


@pytest.mark.parametrize("scheme", ["random", "unique"])
def test_wiring_matches_reference_algorithm(difflogic, scheme):
    from difflogic.functional import get_unique_connections

    torch.manual_seed(3)
    if scheme == "unique":
        ref = get_unique_connections(50, 70, device="cpu")
    else:
        ref = difflogic.LogicLayer(50, 70, device="cpu", implementation="python", connections="random").indices
    torch.manual_seed(3)
    if scheme == "random":
        torch.randn(70, 16)  # the reference draws its weights before its wiring
    ours = make_wiring(scheme, 50, 70)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])


def test_wiring_properties():
    a, b = unique_wiring(40, 60, torch.Generator().manual_seed(0))
    pairs = {(int(i), int(j)) for i, j in zip(a, b)}
    assert len(pairs) == 60 and all(i != j for i, j in pairs)
    a, b = random_wiring(40, 20, torch.Generator().manual_seed(0))
    assert set(torch.cat([a, b]).tolist()) == set(range(40))  # 2 * out = in: every input read once


def test_state_dict_round_trip_keeps_wiring(tmp_path):
    model = logic_network(30, 40, 2, 4, seed=1).eval()
    save_tensors(tmp_path / "m.safetensors", model.state_dict())
    other = logic_network(30, 40, 2, 4, seed=2).eval()
    x = (torch.rand(8, 30) > 0.5).float()
    assert not torch.equal(other(x), model(x))
    other.load_state_dict(load_tensors(tmp_path / "m.safetensors"))
    assert torch.equal(other(x), model(x))


def test_eval_mode_is_the_argmax_gate():
    layer = LogicLayer(6, 5, init="normal").eval()
    x = (torch.rand(20, 6) > 0.5).float()
    hard = neuron_coefficients(layer.weights, hard=True)
    a, b = x[:, layer.idx_a], x[:, layer.idx_b]
    expected = hard[:, 0] + hard[:, 1] * a + hard[:, 2] * b + hard[:, 3] * a * b
    assert torch.equal(layer(x), expected)
    assert set(layer(x).unique().tolist()) <= {0.0, 1.0}


def test_residual_initialisation_passes_input_a_through():
    logits = init_logits(10, "residual")
    p = torch.softmax(logits, -1)
    assert torch.allclose(p[:, 3], torch.full((10,), 0.9082), atol=1e-4)
    layer = LogicLayer(8, 8, init="residual").train()
    x = torch.rand(4, 8)
    assert (layer(x) - x[:, layer.idx_a]).abs().max() < 0.1


@pytest.mark.parametrize("kwargs, message", [
    ({"connections": "ring"}, "wiring scheme"),
    ({"init": "zeros"}, "initialisation"),
    ({"grad_factor": 0.0}, "grad_factor"),
])
def test_bad_options_raise(kwargs, message):
    with pytest.raises(QuintetError, match=message):
        LogicLayer(8, 8, **kwargs)


def test_bad_shapes_raise():
    with pytest.raises(QuintetError, match=r"\(batch, 8\)"):
        LogicLayer(8, 8)(torch.rand(3, 9))
    with pytest.raises(QuintetError, match="at least 50 neurons"):
        LogicLayer(100, 10)
    with pytest.raises(QuintetError, match="divisible"):
        GroupSum(3)(torch.rand(2, 10))
    with pytest.raises(QuintetError, match="divisible"):
        logic_network(10, 25, 2, 10)
