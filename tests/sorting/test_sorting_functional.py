"""quintet.sorting maths: gradients, invariants (hypothesis), hard limit, monotonicity, top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.sorting import (
    MONOTONIC,
    RELAXATIONS,
    _engine,
    diff_topk,
    diffsort,
    get_network,
    ranking_loss,
    ranks_from_scores,
    soft_rank,
    soft_sort,
    swap_probability,
)
from quintet.sorting._engine import bitonic_permutation

NETWORKS = ["odd_even", "bitonic"]
ALL = list(RELAXATIONS)


def _distinct(n, batch=2, seed=0, dtype=torch.float64):
    """Well separated values (gaps >= 0.1) in random order."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.arange(n, dtype=dtype) * 0.3 + torch.rand(batch, n, generator=gen, dtype=dtype) * 0.1
    perm = torch.argsort(torch.rand(batch, n, generator=gen), dim=-1)
    return torch.gather(base, 1, perm)


@pytest.mark.parametrize("relaxation", ALL)
@pytest.mark.parametrize("network", NETWORKS)
def test_gradcheck(relaxation, network):
    x = _distinct(6, seed=1).requires_grad_(True)

    def fn(v):
        s, p = diffsort(v, network=network, relaxation=relaxation, steepness=2.0)
        return s, p

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("relaxation", ALL)
@pytest.mark.parametrize("n", [5, 10])
def test_gradcheck_reference_padding(relaxation, n):
    """diffsort 0.2.0's layout (comparators touching padding become identities) for n not a
    power of two: a different network from the sentinel one, so its own gradcheck."""
    x = _distinct(n, seed=3).requires_grad_(True)
    net_ref, net_sent = get_network("bitonic", n, "reference"), get_network("bitonic", n)
    assert [layer.mode.tolist() for layer in net_ref.layers] != [layer.mode.tolist() for layer in net_sent.layers]

    def fn(v):
        return diffsort(v, network="bitonic", relaxation=relaxation, steepness=2.0, padding="reference")

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [2, 8, 32])
def test_row_chunks_give_the_same_p_and_gradients(size):
    """The bitonic engine builds P in chunks of rows and recomputes each chunk in the backward;
    every chunk size gives the one-chunk result, and the smallest chunks pass gradcheck."""
    blocks = size.bit_length() - 1
    gen = torch.Generator().manual_seed(size)
    us = [torch.rand(3, size // 2, generator=gen, dtype=torch.float64, requires_grad=True)
          for _ in range(blocks * (blocks + 1) // 2)]
    weights = torch.randn(3, size, size, generator=gen, dtype=torch.float64)
    whole = bitonic_permutation(size, us, rows=size, keep=False)
    whole_grads = torch.autograd.grad((whole * weights).sum(), us)
    for rows in (1, 2, size // 4):
        chunked = bitonic_permutation(size, us, rows=max(rows, 1), keep=False)
        torch.testing.assert_close(chunked, whole, atol=0, rtol=0)
        grads = torch.autograd.grad((chunked * weights).sum(), us)
        for got, want in zip(grads, whole_grads):
            torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    if size <= 8:
        assert torch.autograd.gradcheck(lambda *u: bitonic_permutation(size, u, rows=1, keep=False), tuple(us))


@pytest.mark.parametrize("size", [4, 32])
def test_kept_and_recomputed_differences_agree(size):
    """Keeping the per-layer differences from the forward and recomputing them in the backward
    give the same P exactly and the same gradients; the kept path passes gradcheck."""
    blocks = size.bit_length() - 1
    gen = torch.Generator().manual_seed(size + 1)
    us = [torch.rand(2, size // 2, generator=gen, dtype=torch.float64, requires_grad=True)
          for _ in range(blocks * (blocks + 1) // 2)]
    weights = torch.randn(2, size, size, generator=gen, dtype=torch.float64)
    outs = {keep: bitonic_permutation(size, us, rows=max(size // 4, 1), keep=keep) for keep in (True, False)}
    torch.testing.assert_close(outs[True], outs[False], atol=0, rtol=0)
    grads = {keep: torch.autograd.grad((p * weights).sum(), us) for keep, p in outs.items()}
    for kept, recomputed in zip(grads[True], grads[False]):
        torch.testing.assert_close(kept, recomputed, atol=1e-12, rtol=0)
    assert any(g.abs().max() > 1e-3 for g in grads[True])
    if size <= 8:
        assert torch.autograd.gradcheck(lambda *u: bitonic_permutation(size, u, rows=1, keep=True), tuple(us))


def test_differences_kept_only_within_the_budget(monkeypatch):
    """Default: keep the differences when all of them fit ``_KEEP_BUDGET`` bytes, else recompute."""
    us = [torch.rand(2, 2, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert _engine._diff_bytes(us, 4) == 2 * 4 * (1 + 2 + 2) * 8
    for budget, kept in ((320, True), (319, False)):
        monkeypatch.setattr(_engine, "_KEEP_BUDGET", budget)
        p = bitonic_permutation(4, us)
        assert (p.grad_fn.chunk_diffs[0] is not None) == kept


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic_phi"])
def test_gradcheck_rank_topk_and_loss(relaxation):
    x = _distinct(5, seed=2).requires_grad_(True)
    kw = dict(relaxation=relaxation, steepness=3.0)
    assert torch.autograd.gradcheck(lambda v: soft_rank(v, **kw), (x,))
    assert torch.autograd.gradcheck(lambda v: soft_sort(v, network="odd_even", **kw), (x,))
    assert torch.autograd.gradcheck(lambda v: diff_topk(v, 2, **kw), (x,))
    ranks = ranks_from_scores(torch.randn(2, 5))
    assert torch.autograd.gradcheck(lambda v: ranking_loss(diffsort(v, **kw)[1], ranks), (x,))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**16), relaxation=st.sampled_from(ALL),
       network=st.sampled_from(NETWORKS), beta=st.floats(0.5, 50.0))
def test_p_is_doubly_stochastic_and_consistent(n, seed, relaxation, network, beta):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, n, generator=gen, dtype=torch.float64)
    s, p = diffsort(x, network=network, relaxation=relaxation, steepness=beta)
    ones = torch.ones(3, n, dtype=torch.float64)
    torch.testing.assert_close(p.sum(-1), ones)
    torch.testing.assert_close(p.sum(-2), ones)
    assert p.min() >= -1e-12 and p.max() <= 1 + 1e-12
    torch.testing.assert_close(torch.einsum("bi,bij->bj", x, p), s)
    torch.testing.assert_close(soft_sort(x, network=network, relaxation=relaxation, steepness=beta), s)
    ranks = (p * torch.arange(1, n + 1, dtype=torch.float64)).sum(-1)
    torch.testing.assert_close(soft_rank(x, network=network, relaxation=relaxation, steepness=beta), ranks)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 70), seed=st.integers(0, 2**16), network=st.sampled_from(NETWORKS),
       relaxation=st.sampled_from(ALL))
def test_hard_limit_is_torch_sort(n, seed, network, relaxation):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randperm(n, generator=gen).double().unsqueeze(0) + 0.0  # distinct, gaps 1
    s, p = diffsort(x, network=network, relaxation=relaxation, steepness=1e9)
    torch.testing.assert_close(s, x.sort(-1).values, atol=1e-6, rtol=0)
    hard = torch.nn.functional.one_hot(ranks_from_scores(x), n).double()
    torch.testing.assert_close(p, hard, atol=1e-6, rtol=0)
    torch.testing.assert_close(soft_rank(x, network=network, relaxation=relaxation, steepness=1e9),
                               ranks_from_scores(x).double() + 1, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n", list(range(2, 130)))
def test_layouts_sort_every_n(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(64, n))
    for kind in NETWORKS:
        assert np.array_equal(get_network(kind, n).hard_sort(x), np.sort(x, -1)), kind


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 20), seed=st.integers(0, 2**16), relaxation=st.sampled_from(MONOTONIC),
       network=st.sampled_from(NETWORKS), beta=st.floats(0.5, 30.0))
def test_monotonic_relaxations_are_monotonic(n, seed, relaxation, network, beta):
    """ICLR 2022 Def. 1: every soft output is non-decreasing in every input (Jacobian >= 0)."""
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda v: soft_sort(v, network=network, relaxation=relaxation, steepness=beta), x)
    assert jac.min() >= -1e-10


def test_logistic_is_not_monotonic():
    """The counterpart: the plain logistic relaxation can decrease an output (ICLR 2022 Fig. 2)."""
    x = torch.tensor([3.0, 0.0], dtype=torch.float64)
    for relaxation, sign in (("logistic", -1), ("cauchy", 1)):
        jac = torch.autograd.functional.jacobian(lambda v, r=relaxation: soft_sort(v, relaxation=r, steepness=1.0), x)
        assert sign * jac[0, 0] > 1e-3  # d soft-min / d x_0: negative for logistic only


@pytest.mark.parametrize("relaxation", ALL)
def test_sigmoids_are_symmetric_sigmoids(relaxation):
    v = torch.linspace(-5, 5, 201, dtype=torch.float64)
    f = swap_probability(v, relaxation, steepness=2.0)
    torch.testing.assert_close(f + swap_probability(-v, relaxation, steepness=2.0), torch.ones_like(v))
    assert (f.diff() >= 0).all() and f[0] < 0.1 and f[-1] > 0.9
    torch.testing.assert_close(swap_probability(torch.zeros(1, dtype=torch.float64), relaxation),
                               torch.full((1,), 0.5, dtype=torch.float64))


def test_paper_formulas():
    v = torch.tensor([-2.0, -0.1, 0.0, 0.1, 2.0], dtype=torch.float64)
    beta = 1.0
    torch.testing.assert_close(swap_probability(v, "cauchy", beta), torch.atan(v) / torch.pi + 0.5)
    expected_o = torch.where(v < -0.25, -1 / (16 * v), torch.where(v > 0.25, 1 - 1 / (16 * v), v + 0.5))
    torch.testing.assert_close(swap_probability(v, "optimal", beta), expected_o)
    torch.testing.assert_close(swap_probability(v, "logistic_phi", 3.0, art_lambda=0.5),
                               torch.sigmoid(3.0 * v / (v.abs() + 1e-10) ** 0.5))
    torch.testing.assert_close(swap_probability(v, "gaussian", 2.0), torch.special.ndtr(2.0 * v))


@pytest.mark.parametrize("network", NETWORKS)
def test_descending_topk_and_float32(network):
    x = torch.randn(4, 19, dtype=torch.float64)
    s, p = diffsort(x, network=network, steepness=20.0)
    sd, pd = diffsort(x, network=network, steepness=20.0, descending=True)
    torch.testing.assert_close(sd, s.flip(-1))
    torch.testing.assert_close(pd, p.flip(-1))
    for k in (1, 3, 19):
        v, pk = diff_topk(x, k, network=network, steepness=20.0)
        assert v.shape == (4, k) and pk.shape == (4, 19, k)
        torch.testing.assert_close(v, sd[:, :k])
        torch.testing.assert_close(pk, pd[:, :, :k])
    s32, p32 = diffsort(x.float(), network=network, steepness=20.0)
    assert s32.dtype == p32.dtype == torch.float32
    torch.testing.assert_close(p32.double(), p, atol=1e-5, rtol=0)


def test_topk_prunes_comparators():
    from quintet.sorting.networks import prune_to_outputs

    bitonic, odd_even = get_network("bitonic", 64), get_network("odd_even", 64)
    assert prune_to_outputs(bitonic, np.arange(63, 64)).num_comparators == 543 < bitonic.num_comparators == 672
    assert prune_to_outputs(odd_even, np.arange(63, 64)).num_comparators == 1024 < odd_even.num_comparators == 2016


def test_one_dimensional_input_and_ranking_loss():
    x = torch.tensor([3.0, 1.0, 2.0])
    s, p = diffsort(x, steepness=50.0)
    assert s.shape == (3,) and p.shape == (3, 3)
    ranks = ranks_from_scores(x.unsqueeze(0))
    assert ranks.tolist() == [[2, 0, 1]]
    good = ranking_loss(p.unsqueeze(0), ranks)
    bad = ranking_loss(p.unsqueeze(0), torch.tensor([[0, 1, 2]]))
    assert good < 0.01 < bad
