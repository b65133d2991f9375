"""The read's sharpness bounds for cosines in [0, 1], batch-norm statistics kept apart in the
meta step, the slot classifier's initialisation and the zero slot of unseen classes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.segmentation.diagnosis import attention_stats, max_attention_bound, min_entropy_bound
from quintet.segmentation.losses import LossWeights
from quintet.segmentation.memory import CategoricalMemory, mean_pairwise_cosine, read_attention
from quintet.segmentation.meta import meta_step, split_domains
from quintet.segmentation.models import NetConfig, SegmentationNet

CFG = NetConfig.tiny(num_classes=3, stem=4, widths=(4, 4, 4, 4), aspp_dim=4, aspp_rates=(1,), decoder_dim=4,
                     low_dim=4)


def _entropy(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    a = read_attention(scores, temperature)
    return -(a * a.clamp_min(1e-300).log()).sum(-1)


def test_bounds_for_cosines_in_unit_interval():
    # one slot at cosine 1, ten at 0, T = 1: 1 / (1 + 10/e) ≈ 0.214 (not the 0.425 of cosines in [−1, 1])
    assert max_attention_bound(11, 1.0) == pytest.approx(1 / (1 + 10 / math.e))
    assert max_attention_bound(11, 1.0) == pytest.approx(0.2137, abs=1e-4)
    assert max_attention_bound(11, 1.0, (-1.0, 1.0)) == pytest.approx(math.e / (math.e + 10 / math.e))
    one_top = torch.zeros(11, dtype=torch.float64)
    one_top[0] = 1.0
    assert read_attention(one_top, 1.0).max().item() == pytest.approx(max_attention_bound(11, 1.0))
    # the lowest entropy is reached with four slots at the top, 94.9 % of ln 11, below the one-slot 97.1 %
    four_top = torch.zeros(11, dtype=torch.float64)
    four_top[:4] = 1.0
    assert min_entropy_bound(11, 1.0) == pytest.approx(_entropy(four_top, 1.0).item(), rel=1e-12)
    assert min_entropy_bound(11, 1.0) / math.log(11) == pytest.approx(0.949, abs=1e-3)
    assert _entropy(one_top, 1.0).item() / math.log(11) == pytest.approx(0.971, abs=1e-3)
    # sharper temperatures allow sharper reads
    assert min_entropy_bound(11, 0.1) < min_entropy_bound(11, 0.5) < min_entropy_bound(11, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20), st.floats(0.05, 3.0), st.integers(0, 10_000))
def test_no_read_beats_the_bounds(k, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(64, k, generator=g, dtype=torch.float64)
    scores[:8] = (scores[:8] > 0.5).double()  # corners of the box too
    a = read_attention(scores, temperature)
    assert a.max().item() <= max_attention_bound(k, temperature) + 1e-12
    assert _entropy(scores, temperature).min().item() >= min_entropy_bound(k, temperature) - 1e-9


def test_gradient_search_finds_no_lower_entropy():
    torch.manual_seed(0)
    z = torch.randn(128, 11, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(150):
        h = _entropy(torch.sigmoid(z), 1.0)
        opt.zero_grad()
        h.sum().backward()
        opt.step()
    lowest = _entropy(torch.sigmoid(z), 1.0).min().item()
    assert lowest >= min_entropy_bound(11, 1.0) - 1e-9
    assert lowest == pytest.approx(min_entropy_bound(11, 1.0), abs=2e-3)  # and it gets there


def test_model_cosines_lie_in_unit_interval():
    torch.manual_seed(0)
    model = SegmentationNet(NetConfig.tiny(num_classes=5)).eval()
    model.memory.initialise(torch.rand(5, 64), torch.ones(5))  # class means of ReLU features are >= 0
    with torch.no_grad():
        scores = model(torch.randn(2, 3, 48, 64))["scores"]
    assert scores.min().item() >= 0.0 and scores.max().item() <= 1.0 + 1e-6
    stats = attention_stats(read_attention(scores).numpy())
    assert stats["entropy"] >= min_entropy_bound(5, 1.0) - 1e-9


def _batches(seed: int = 0, shift: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(2):
        x = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64) * (1 + i) + i + (shift if i else 0.0)
        out.append((x, torch.randint(0, 3, (2, 16, 16), generator=g)))
    return out


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers() if "running" in n or "num_batches" in n}


@pytest.mark.parametrize("memory", [False, True])
def test_meta_test_batches_leave_the_deployed_statistics_alone(memory):
    torch.manual_seed(0)
    base = SegmentationNet(NetConfig.from_dict(CFG.to_dict() | {"memory": memory})).double().train()
    seed = next(s for s in range(50) if split_domains(2, np.random.default_rng(s)) == ([0], [1]))
    after = []
    for shift in (0.0, 5.0):  # only the meta-test domain (index 1) differs
        model = copy.deepcopy(base)
        meta_step(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(shift=shift), LossWeights(), 0.025,
                  np.random.default_rng(seed))
        after.append(_buffers(model))
    for name in after[0]:
        assert torch.equal(after[0][name], after[1][name]), name
    # and they are what one train-mode forward of the meta-train batch leaves
    ref = copy.deepcopy(base)
    x, y = _batches()[0]
    with torch.no_grad():
        ref(x, y, write=memory)
    for name, value in _buffers(ref).items():
        assert torch.allclose(after[0][name], value, atol=1e-12), name
    moved = [n for n, v in _buffers(base).items() if "running_mean" in n and not torch.equal(v, after[0][n])]
    assert moved  # the meta-train batch did update them


def test_slot_classifier_starts_near_zero():
    torch.manual_seed(0)
    mem = SegmentationNet(NetConfig.tiny(num_classes=11)).memory
    w = mem.classifier.weight
    assert w.std().item() == pytest.approx(1e-4, rel=0.1) and torch.equal(mem.classifier.bias, torch.zeros(11))
    # the write net's conv keeps the model-wide Kaiming normal init (the authors' choice too)
    conv = mem.writer.conv.weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / conv.shape[1]), rel=0.15)


def test_unseen_class_gets_a_zero_slot_and_pairwise_cosine():
    mem = CategoricalMemory(3, 4)
    sums = torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 0]])
    mem.initialise(sums, torch.tensor([1.0, 2.0, 0.0]))
    assert torch.equal(mem.slots[2], torch.zeros(4))
    assert torch.allclose(mem.slots[:2], torch.eye(4)[:2])
    assert mean_pairwise_cosine(mem.slots) == pytest.approx(0.0)
    mem.slots.copy_(torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    assert mean_pairwise_cosine(mem.slots) == pytest.approx(2 / 6)
