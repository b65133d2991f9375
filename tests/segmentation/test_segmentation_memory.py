"""Memory read/write maths and the losses: values against the formulas, gradcheck, invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.segmentation.losses import (
    LossWeights,
    feature_cohesion_loss,
    memory_divergence_loss,
    slot_classification_loss,
    total_loss,
)
from quintet.segmentation.memory import (
    CategoricalMemory,
    class_sums,
    l2_normalize,
    label_masks,
    memory_scores,
    momentum_update,
    read_attention,
    read_memory,
)


def _unit(k, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return l2_normalize(torch.randn(k, d, generator=g, dtype=dtype), dim=1)


def test_read_matches_loops():
    q = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    m = _unit(4, 5)
    readout, att, scores = read_memory(q, m, temperature=0.5)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                v = q[b, :, i, j] / q[b, :, i, j].norm()
                cos = m @ v
                assert torch.allclose(scores[b, i, j], cos)
                a = torch.softmax(cos / 0.5, 0)
                assert torch.allclose(att[b, i, j], a)
                assert torch.allclose(readout[b, :, i, j], a @ m)


def test_read_attention_peaks_at_matching_slot():
    m = torch.eye(4, dtype=torch.float64)
    q = (3.0 * torch.eye(4, dtype=torch.float64)).T.reshape(1, 4, 1, 4)  # pixel j equals slot j
    _, att, scores = read_memory(q, m, temperature=0.1)
    assert torch.equal(att[0, 0].argmax(-1), torch.arange(4))
    assert torch.allclose(scores[0, 0], torch.eye(4, dtype=torch.float64))


def test_gumbel_read_is_a_random_distribution():
    s = torch.randn(2, 3, 3, 5)
    g1 = read_attention(s, gumbel=True, generator=torch.Generator().manual_seed(1))
    g2 = read_attention(s, gumbel=True, generator=torch.Generator().manual_seed(1))
    g3 = read_attention(s, gumbel=True, generator=torch.Generator().manual_seed(2))
    soft = read_attention(s)
    assert torch.allclose(g1.sum(-1), torch.ones(2, 3, 3))
    assert torch.equal(g1, g2) and not torch.allclose(g1, g3) and not torch.allclose(g1, soft)


def test_momentum_update_formula_and_absent_classes():
    m = _unit(3, 4)
    sums = torch.tensor([[1.0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 3, 3]], dtype=torch.float64)
    weights = torch.tensor([2.0, 0.0, 3.0], dtype=torch.float64)
    new = momentum_update(m, sums, weights, 0.8)
    for k in (0, 2):
        expect = 0.8 * m[k] + 0.2 * sums[k] / weights[k]
        assert torch.allclose(new[k], expect / expect.norm())
    assert torch.equal(new[1], m[1])


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 6), st.integers(2, 8), st.floats(0.0, 0.99), st.integers(0, 10_000))
def test_momentum_update_keeps_unit_slots(k, d, mom, seed):
    g = torch.Generator().manual_seed(seed)
    m = _unit(k, d, seed)
    sums = torch.rand(k, d, generator=g, dtype=torch.float64)
    weights = (torch.rand(k, generator=g, dtype=torch.float64) > 0.3).double() * 2.0
    new = momentum_update(m, sums, weights, mom)
    assert torch.allclose(new.norm(dim=1), torch.ones(k, dtype=torch.float64))


def test_class_sums_equal_class_means_at_same_resolution():
    feat = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    lab = torch.randint(0, 3, (2, 4, 5))
    lab[0, 0, 0] = 255
    sums, w = class_sums(feat, lab, 3)
    for k in range(3):
        sel = (lab == k)
        assert w[k] == sel.sum()
        assert torch.allclose(sums[k], feat.permute(0, 2, 3, 1)[sel].sum(0))


def test_label_masks_are_soft_fractions():
    lab = torch.tensor([[[0, 0, 1, 1], [0, 255, 1, 2]]])
    masks = label_masks(lab, 3, (1, 2))
    assert torch.allclose(masks[0, :, 0, 0], torch.tensor([0.75, 0.0, 0.0]))
    assert torch.allclose(masks[0, :, 0, 1], torch.tensor([0.0, 0.75, 0.25]))


def test_divergence_loss_values():
    assert memory_divergence_loss(torch.eye(4, dtype=torch.float64)).item() == 0.0
    same = l2_normalize(torch.ones(3, 5, dtype=torch.float64))
    assert memory_divergence_loss(same).item() == pytest.approx(1.0)
    m = _unit(5, 6, 3)
    cos = (m @ m.T).numpy()
    expect = sum(max(cos[i, j], 0) for i in range(5) for j in range(5) if i != j) / 20
    assert memory_divergence_loss(m).item() == pytest.approx(expect)


def test_cohesion_loss_is_cross_entropy_of_scaled_cosines():
    scores = torch.rand(2, 4, 4, 3) * 2 - 1
    lab = torch.randint(0, 3, (2, 4, 4))
    lab[1, 2, 2] = 255
    got = feature_cohesion_loss(scores, lab, temperature=0.5)
    ref = F.cross_entropy(scores.permute(0, 3, 1, 2) / 0.5, lab, ignore_index=255)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


def test_slot_classification_loss():
    clf = torch.nn.Linear(4, 3)
    m = _unit(3, 4, dtype=torch.float32)
    assert slot_classification_loss(clf, m).item() == pytest.approx(F.cross_entropy(clf(m), torch.arange(3)).item())


def test_gradcheck_memory_ops():
    q = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    m = _unit(3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: read_memory(a, b, 0.7)[0], (q, m))
    assert torch.autograd.gradcheck(lambda a, b: memory_scores(a, b), (q, m))
    sums = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: momentum_update(a, b, w, 0.8), (m, sums))
    lab = torch.randint(0, 3, (1, 4, 6))
    assert torch.autograd.gradcheck(lambda f: class_sums(f, lab, 3)[0], (q,))
    assert torch.autograd.gradcheck(memory_divergence_loss, (m,))
    s = (torch.rand(1, 2, 3, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: feature_cohesion_loss(a, lab, 0.5), (s,))


def test_memory_module_write_and_store():
    torch.manual_seed(0)
    mem = CategoricalMemory(3, 4)
    before = mem.slots.clone()
    feat = torch.randn(2, 4, 3, 3)
    lab = torch.zeros(2, 6, 6, dtype=torch.long)  # only class 0 present
    new = mem.write(feat, lab)
    assert torch.equal(new[1:], before[1:]) and not torch.allclose(new[0], before[0])
    mem.store(new)
    assert torch.allclose(mem.slots.norm(dim=1), torch.ones(3))
    fused, att, scores = mem.read(feat)
    assert fused.shape == feat.shape and att.shape == (2, 3, 3, 3)


def test_total_loss_weights_switch_terms():
    torch.manual_seed(0)
    out = {"logits": torch.randn(1, 3, 4, 4), "scores": torch.rand(1, 2, 2, 3), "new_memory": _unit(3, 4, dtype=torch.float32)}
    lab = torch.randint(0, 3, (1, 4, 4))
    clf = torch.nn.Linear(4, 3)
    full, parts = total_loss(out, lab, LossWeights(), clf)
    assert set(parts) == {"seg", "cohesion", "divergence", "classification"}
    expect = parts["seg"] + 0.02 * parts["cohesion"] + 0.4 * parts["divergence"] + 0.2 * parts["classification"]
    assert full.item() == pytest.approx(expect, rel=1e-5)
    _, parts = total_loss(out, lab, LossWeights(cohesion=0.0, divergence=0.0), clf)
    assert set(parts) == {"seg", "classification"}
    assert np.isfinite(full.item())


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(2, 6), st.integers(2, 8), st.floats(0.05, 5.0), st.integers(0, 10_000))
def test_read_invariants(b, k, d, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, d, 2, 3, generator=g, dtype=torch.float64)
    m = _unit(k, d, seed)
    readout, att, scores = read_memory(q, m, temperature)
    assert torch.allclose(att.sum(-1), torch.ones(b, 2, 3, dtype=torch.float64))
    assert (scores.abs() <= 1 + 1e-9).all()
    assert (readout.norm(dim=1) <= 1 + 1e-9).all()  # a convex mix of unit slots
    # scaling the query does not change the read (cosine similarity)
    assert torch.allclose(read_memory(3.7 * q, m, temperature)[1], att)


def test_read_overrides_for_the_diagnosis():
    from quintet.segmentation.diagnosis import forced_read
    from quintet.segmentation.models import NetConfig, SegmentationNet

    torch.manual_seed(0)
    model = SegmentationNet(NetConfig.tiny(num_classes=3, stem=4, widths=(4, 4, 4, 4), aspp_dim=4, decoder_dim=4,
                                           low_dim=4)).eval()
    mem = model.memory
    feat = torch.randn(2, 4, 3, 3)
    fused, att, _ = mem.read(feat)
    with forced_read(model, "uniform"):
        f_uni, a_uni, _ = mem.read(feat)
        f_ref = mem.fuse(torch.cat([l2_normalize(feat, dim=1), mem.slots.mean(0)[None, :, None, None].expand(2, 4, 3, 3)], 1))
        assert torch.allclose(a_uni, torch.full_like(att, 1 / 3)) and torch.allclose(f_uni, f_ref, atol=1e-6)
    with forced_read(model, "zero"):
        f_zero, _, _ = mem.read(feat)
        assert torch.allclose(f_zero, mem.fuse(torch.cat([l2_normalize(feat, dim=1), torch.zeros_like(feat)], 1)))
    assert mem.read_override is None and torch.equal(mem.read(feat)[0], fused)  # restored
    with pytest.raises(QuintetError, match="unknown read override 'half'"):
        with forced_read(model, "half"):
            pass


def test_attention_stats_and_bound():
    from quintet.segmentation.diagnosis import attention_stats, max_attention_bound

    uniform = attention_stats(np.full((2, 3, 4), 0.25))
    assert uniform["entropy"] == pytest.approx(np.log(4)) and uniform["ln_k"] == pytest.approx(np.log(4))
    assert uniform["max_attention"] == pytest.approx(0.25) and uniform["uniform_max"] == 0.25
    onehot = attention_stats(np.eye(4)[[0, 1, 3]])
    assert onehot["entropy"] == pytest.approx(0.0, abs=1e-12) and onehot["max_attention"] == 1.0
    mixed = attention_stats(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    assert mixed["entropy"] == pytest.approx(np.log(2) / 2) and mixed["max_attention"] == pytest.approx(0.75)
    # cosines in [−1, 1]: one slot at cosine 1, ten at −1, T = 1: e / (e + 10/e)
    assert max_attention_bound(11, 1.0, (-1.0, 1.0)) == pytest.approx(np.e / (np.e + 10 / np.e))
    scores = torch.full((1, 1, 1, 11), -1.0)
    scores[..., 0] = 1.0
    assert read_attention(scores, 0.5).max().item() == pytest.approx(max_attention_bound(11, 0.5, (-1.0, 1.0)))
    # the default range [0, 1] of ReLU features: one slot at 1, ten at 0
    scores[..., 1:] = 0.0
    assert read_attention(scores, 0.5).max().item() == pytest.approx(max_attention_bound(11, 0.5))
