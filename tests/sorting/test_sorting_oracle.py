"""quintet.sorting against the reference package diffsort 0.2.0 (the `bench` extra)."""

from __future__ import annotations

import zlib

import pytest
import torch

from quintet.sorting import DiffSortNet, diffsort

ref = pytest.importorskip("diffsort", reason="the reference package diffsort (bench extra) is not installed")

SHARED = ["logistic", "logistic_phi", "gaussian", "reciprocal", "cauchy", "optimal"]
SIZES = [2, 3, 5, 16, 33, 100]


def _reference(x, network, relaxation, steepness=10.0):
    return ref.DiffSortNet(network, x.shape[1], steepness=steepness, distribution=relaxation)(x)


@pytest.mark.parametrize("network", ["odd_even", "bitonic"])
@pytest.mark.parametrize("relaxation", SHARED)
def test_matches_reference_float32(network, relaxation):
    """Sorted values and P agree to 1e-5 in float32 (the drop-in bound), strictly: no case is
    exempt.  Measured worst deviation over these cases: 3.1e-6 (bitonic, optimal, n = 33)."""
    gen = torch.Generator().manual_seed(zlib.crc32(f"{network}-{relaxation}".encode()))
    for n in SIZES:
        x = torch.rand(6, n, generator=gen)
        r_sorted, r_p = _reference(x, network, relaxation)
        m_sorted, m_p = diffsort(x, network=network, relaxation=relaxation, steepness=10.0, padding="reference")
        assert m_sorted.dtype == torch.float32 and m_p.shape == (6, n, n)
        assert (m_sorted - r_sorted).abs().max().item() <= 1e-5, n
        assert (m_p - r_p).abs().max().item() <= 1e-5, n


@pytest.mark.parametrize("network", ["odd_even", "bitonic"])
@pytest.mark.parametrize("relaxation", SHARED)
def test_matches_reference_float64(network, relaxation):
    """Same maths: in float64 the two agree to 1e-9 for every shared size."""
    gen = torch.Generator().manual_seed(7)
    for n in SIZES:
        x = torch.randn(3, n, generator=gen, dtype=torch.float64)
        r_sorted, r_p = _reference(x, network, relaxation, steepness=6.0)
        m_sorted, m_p = diffsort(x, network=network, relaxation=relaxation, steepness=6.0, padding="reference")
        torch.testing.assert_close(m_sorted, r_sorted, atol=1e-9, rtol=0)
        torch.testing.assert_close(m_p, r_p, atol=1e-9, rtol=0)


def test_art_lambda_and_gradients_match_reference():
    x = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 12, 12, dtype=torch.float64)
    grads = []
    for impl in ("ref", "mine"):
        if impl == "ref":
            s, p = ref.DiffSortNet("bitonic", 12, steepness=8.0, art_lambda=0.4, distribution="logistic_phi")(x)
        else:
            s, p = DiffSortNet("bitonic", 12, steepness=8.0, art_lambda=0.4, distribution="logistic_phi")(x)
        (g,) = torch.autograd.grad((p * weights).sum() + s.pow(2).sum(), x)
        grads.append(g)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-9, rtol=1e-7)


def test_module_is_a_drop_in():
    x = torch.rand(5, 33)
    for kwargs in ({}, {"interpolation_type": "logistic"}, {"distribution": "optimal", "steepness": 3.0}):
        r_sorted, r_p = ref.DiffSortNet("bitonic", 33, **kwargs)(x)
        m_sorted, m_p = DiffSortNet("bitonic", 33, **kwargs)(x)
        torch.testing.assert_close(m_sorted, r_sorted, atol=1e-5, rtol=0)
        torch.testing.assert_close(m_p, r_p, atol=1e-5, rtol=0)


def test_reference_padding_is_not_a_sorting_network_for_22():
    """The reference's padding drops comparators that touch padding; for n = 22 that no longer
    sorts even in the hard limit.  Our default (sentinel) padding does."""
    x = torch.randn(256, 22, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r_sorted, _ = _reference(x, "bitonic", "logistic", steepness=1e7)
    truth = x.sort(-1).values
    assert not torch.allclose(r_sorted, truth)
    m_ref, _ = diffsort(x, network="bitonic", relaxation="logistic", steepness=1e7, padding="reference")
    torch.testing.assert_close(m_ref, r_sorted)
    m_sent, _ = diffsort(x, network="bitonic", relaxation="logistic", steepness=1e7)
    torch.testing.assert_close(m_sent, truth)
