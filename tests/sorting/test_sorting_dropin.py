"""Drop-in behaviour expected of a diffsort replacement: empty batches, second derivatives, a
learnable steepness, argument validation, the device argument and the reference layout's
unsorted sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.sorting import DiffSortNet, diff_topk, diffsort, soft_rank, soft_sort
from quintet.sorting.functional import DIRECT_MAX_SIZE
from quintet.sorting.networks import REFERENCE_UNSORTED, bitonic_network

NETWORKS = ["odd_even", "bitonic"]


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("n", [2, 3, 8, 13, 64])
def test_empty_batch(network, n):
    x = torch.randn(0, n, requires_grad=True)
    values, p = diffsort(x, network=network)
    assert values.shape == (0, n) and p.shape == (0, n, n)
    (values.sum() + p.sum()).backward()
    assert x.grad.shape == (0, n)
    assert soft_sort(x, network=network).shape == (0, n) and soft_rank(x, network=network).shape == (0, n)
    assert diff_topk(x, 2, network=network)[1].shape == (0, n, 2)
    assert DiffSortNet(network, n)(torch.randn(0, n))[1].shape == (0, n, n)


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("n", [3, 6, 16, 20])
def test_gradgradcheck_through_p(network, n):
    """Second derivatives through P (n = 3, 6: the direct path; 16, 20: the column-pair engine)."""
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(2, n, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: diffsort(v, network=network, steepness=2.0)[1], (x,),
                                        fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda v: diff_topk(v, 2, network=network, steepness=2.0)[1], (x,),
                                        fast_mode=True)


def test_double_backward_matches_the_hessian_of_plain_autograd():
    """The Hessian-vector product of a loss through P equals the one of a dense re-implementation."""
    n = 16
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, n, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, n, n, generator=gen, dtype=torch.float64)
    v = torch.randn(3, n, generator=gen, dtype=torch.float64)

    def hvp(fn):
        (g,) = torch.autograd.grad((fn(x) * w).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), x)
        return h

    def dense(values):  # P = M_1 ... M_L with explicit (n, n) mixing matrices, plain autograd
        from quintet.sorting.relaxations import swap_probability

        mat = torch.eye(n, dtype=values.dtype).expand(3, n, n)
        for layer in bitonic_network(n).layers:
            a, b = torch.as_tensor(layer.a), torch.as_tensor(layer.b)
            alpha = swap_probability(values[:, b] - values[:, a], "cauchy", 2.0)
            u = torch.where(torch.as_tensor(layer.descending), alpha, 1 - alpha)
            ca, cb = mat[..., a], mat[..., b]
            d = ca - cb
            mat = mat.index_copy(-1, a, ca - u.unsqueeze(1) * d).index_copy(-1, b, cb + u.unsqueeze(1) * d)
            va, vb = values[:, a], values[:, b]
            values = values.index_copy(1, a, va - u * (va - vb)).index_copy(1, b, vb + u * (va - vb))
        return mat

    ours = hvp(lambda t: diffsort(t, network="bitonic", steepness=2.0)[1])
    torch.testing.assert_close(ours, hvp(dense), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("network", NETWORKS)
def test_learnable_steepness_gets_its_gradient(network):
    x = torch.randn(4, 7, dtype=torch.float64)
    beta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b: diffsort(x, network=network, steepness=b)[1], (beta,))
    assert torch.autograd.gradcheck(lambda b: soft_rank(x, network=network, steepness=b), (beta,))
    # the tensor gives the same result as the number
    torch.testing.assert_close(diffsort(x, network=network, steepness=beta)[1],
                               diffsort(x, network=network, steepness=3.0)[1])


def test_diffsortnet_learns_its_steepness():
    beta = torch.nn.Parameter(torch.tensor(2.0))
    net = DiffSortNet("bitonic", 6, steepness=beta)
    assert [name for name, _ in net.named_parameters()] == ["steepness"]
    x = torch.tensor([[0.3, -1.2, 2.0, 0.1, -0.4, 1.1]])
    ranks = torch.argsort(torch.argsort(x))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    for _ in range(5):
        _, p = net(x)
        loss = torch.nn.functional.binary_cross_entropy(p, torch.nn.functional.one_hot(ranks, 6).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert beta.item() > 2.0  # sharper sorting lowers the loss on a correctly ordered target


@pytest.mark.parametrize("kwargs, needle", [
    ({"size": 6.5}, "size must be an integer number of inputs, got 6.5"),
    ({"size": "6"}, "size must be an integer"),
    ({"size": 6, "art_lambda": float("nan")}, "art_lambda must be a finite number >= 0, got nan"),
    ({"size": 6, "art_lambda": -0.5}, "art_lambda must be a finite number >= 0"),
    ({"size": 6, "steepness": float("nan")}, "steepness must be a positive finite number"),
    ({"size": 6, "steepness": torch.tensor([1.0, 2.0])}, "a tensor steepness must hold one floating value"),
    ({"size": 6, "steepness": torch.tensor(-1.0)}, "steepness must be a positive finite number, got -1.0"),
    ({"size": 6, "device": "bogus"}, "device 'bogus' is not available here"),
])
def test_diffsortnet_validates(kwargs, needle):
    with pytest.raises(QuintetError) as info:
        DiffSortNet("bitonic", **kwargs)
    assert needle in str(info.value)


def test_functional_rejects_nan_art_lambda():
    with pytest.raises(QuintetError, match="art_lambda must be a finite number"):
        diffsort(torch.randn(2, 5), relaxation="logistic_phi", art_lambda=float("nan"))


def test_device_is_honoured():
    net = DiffSortNet("odd_even", 5, device="cpu")
    assert net.device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(QuintetError, match="device 'cuda' is not available here"):
            DiffSortNet("odd_even", 5, device="cuda")


@pytest.mark.parametrize("n", range(2, DIRECT_MAX_SIZE + 1))
def test_direct_path_equals_engine(n, monkeypatch):
    """Small bitonic networks build P directly; the column-pair engine gives the same P."""
    from quintet.sorting import functional

    x = torch.randn(5, n, dtype=torch.float64)
    direct = diffsort(x, network="bitonic", steepness=3.0)
    monkeypatch.setattr(functional, "DIRECT_MAX_SIZE", 0)
    engine = diffsort(x, network="bitonic", steepness=3.0)
    torch.testing.assert_close(direct, engine, rtol=0, atol=1e-12)


def test_reference_unsorted_sizes():
    """The sizes listed as unsorted under padding="reference" are exactly those (2..128) where
    random inputs come out unsorted in the hard limit; the sentinel layout sorts them all."""
    rng = np.random.default_rng(0)
    found = []
    for n in range(2, 129):
        x = rng.standard_normal((1000, n))
        if not np.allclose(bitonic_network(n, "reference").hard_sort(x), np.sort(x, -1)):
            found.append(n)
        if n in (22, 100):
            np.testing.assert_allclose(bitonic_network(n).hard_sort(x), np.sort(x, -1))
    assert found == [n for n in REFERENCE_UNSORTED if n <= 128]
    assert 59 not in REFERENCE_UNSORTED and 100 not in REFERENCE_UNSORTED
