"""The meta-learning episode against a hand-written first-order reference, the memory
initialisation, the random domain split, and the paper's default weights (Kim et al. 2022,
Sec. 3.4–3.5, Alg. 1)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.func import functional_call

import quintet.segmentation.experiments as ex
from quintet.segmentation.demo import synthetic_domain
from quintet.segmentation.losses import LossWeights, total_loss
from quintet.segmentation.memory import (
    CategoricalMemory,
    l2_normalize,
    label_masks,
    momentum_update,
)
from quintet.segmentation.meta import initialise_memory, meta_step, split_domains
from quintet.segmentation.models import NetConfig, SegmentationNet

CFG = NetConfig.tiny(num_classes=3, stem=4, widths=(4, 4, 4, 4), aspp_dim=4, aspp_rates=(1,), decoder_dim=4,
                     low_dim=4)
LR = 0.5


def _batches(n: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64) + i
        y = torch.randint(0, 3, (2, 16, 16), generator=g)
        y[:, :2] = 255
        out.append((x, y))
    return out


def _model(memory: bool) -> SegmentationNet:
    torch.manual_seed(0)
    model = SegmentationNet(NetConfig.from_dict(CFG.to_dict() | {"memory": memory})).double()
    if memory:  # distinct, non-trivial slots
        model.memory.slots.copy_(l2_normalize(torch.randn(3, 4, dtype=torch.float64), dim=1))
    return model.train()


def _reference_episode(model: SegmentationNet, batches, weights: LossWeights, lr: float, alpha: float,
                       split: tuple[list[int], list[int]]) -> torch.Tensor | None:
    """Alg. 1, first order, written out: g_tr = ∇L_tr(θ); θ' = θ − α·g_tr; meta-test memory M'
    written with θ' (write network only) from the meta-train batch, starting from M;
    g_te = ∇_θ' L_te(θ'; M'); θ ← θ − lr·(g_tr + g_te); M ← write(θ, meta-train) in eval mode.
    Returns M' (None without memory)."""
    tr, te = split
    x_tr, y_tr = torch.cat([batches[i][0] for i in tr]), torch.cat([batches[i][1] for i in tr])
    x_te, y_te = torch.cat([batches[i][0] for i in te]), torch.cat([batches[i][1] for i in te])
    mem = model.memory is not None
    names, theta = zip(*model.named_parameters())
    out = model(x_tr, y_tr, write=mem)
    loss_tr, _ = total_loss(out, y_tr, weights, model.memory.classifier if mem else None)
    g_tr = torch.autograd.grad(loss_tr, theta)
    prime = {n: (p - alpha * g).detach().requires_grad_(True) for n, p, g in zip(names, theta, g_tr)}
    own = {n: b.clone() for n, b in model.named_buffers()}  # θ' statistics, kept apart
    kwargs, written = {}, None
    if mem:
        feat = functional_call(model, (prime, own), (x_tr,), {"encode_only": True})["features"].detach()
        writer = {n[len("memory."):]: p for n, p in (prime | own).items() if n.startswith("memory.")}
        written = functional_call(model.memory, writer, (feat, y_tr, model.memory.slots.clone()))
        kwargs["memory"] = written
    loss_te, _ = total_loss(functional_call(model, (prime, own), (x_te,), kwargs), y_te, weights, None)
    g_te = torch.autograd.grad(loss_te, list(prime.values()), allow_unused=True)
    with torch.no_grad():
        for p, a, b in zip(theta, g_tr, g_te):
            p -= lr * (a + (0 if b is None else b))
        if mem:
            model.eval()
            model.memory.store(model(x_tr, y_tr, write=True)["new_memory"])
            model.train()
    return None if written is None else written.detach()


def _seeds_with_both_splits() -> list[int]:
    found: dict[tuple, int] = {}
    for s in range(50):
        found.setdefault(tuple(map(tuple, split_domains(2, np.random.default_rng(s)))), s)
    assert set(found) == {((0,), (1,)), ((1,), (0,))}
    return sorted(found.values())


def _meta_step_recording_reads(model, batches, weights, alpha, seed, monkeypatch) -> list[torch.Tensor]:
    """Run :func:`meta_step`; return every memory passed explicitly to a forward (the meta-test read)."""
    reads: list[torch.Tensor] = []
    forward = SegmentationNet.forward

    def spy(self, *args, **kwargs):
        if kwargs.get("memory") is not None:
            reads.append(kwargs["memory"].detach().clone())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SegmentationNet, "forward", spy)
    torch.manual_seed(1)
    meta_step(model, torch.optim.SGD(model.parameters(), lr=LR), batches, weights, alpha, np.random.default_rng(seed))
    monkeypatch.setattr(SegmentationNet, "forward", forward)
    return reads


@pytest.mark.parametrize("memory", [False, True])
def test_meta_step_equals_first_order_reference(memory, monkeypatch):
    batches, weights = _batches(), LossWeights()
    alpha = LR / 4
    for seed in _seeds_with_both_splits():
        model = _model(memory)
        ref = copy.deepcopy(model)
        reads = _meta_step_recording_reads(model, batches, weights, alpha, seed, monkeypatch)
        torch.manual_seed(1)
        written = _reference_episode(ref, batches, weights, LR, alpha, split_domains(2, np.random.default_rng(seed)))
        for (name, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
            assert torch.allclose(a.double(), b.double(), rtol=1e-9, atol=1e-12), name
        if memory:  # meta-test read exactly the memory written from meta-train with θ'
            assert len(reads) == 1
            assert torch.allclose(reads[0], written, atol=1e-12)
            assert not torch.allclose(written, _model(True).memory.slots, atol=1e-3)


def test_reference_is_sensitive_to_the_inner_step():
    """θ' matters: with α = 0 the episode ends at different weights (guards the test above)."""
    batches, weights, split = _batches(), LossWeights(), ([0], [1])
    a, b = _model(True), _model(True)
    torch.manual_seed(1)
    _reference_episode(a, batches, weights, LR, LR / 4, split)
    torch.manual_seed(1)
    _reference_episode(b, batches, weights, LR, 0.0, split)
    diff = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
    assert diff > 1e-6


def test_split_is_a_random_partition():
    splits = {tuple(map(tuple, split_domains(3, np.random.default_rng(s)))) for s in range(40)}
    assert len(splits) == 6  # every ordered partition of 3 domains into two non-empty parts
    for tr, te in splits:
        assert tr and te and sorted(tr + te) == [0, 1, 2]
    with pytest.raises(ValueError, match="at least 2 source domains"):
        split_domains(1, np.random.default_rng(0))


def test_initialise_memory_is_normalised_class_means():
    model = _model(True)
    random_slots = model.memory.slots.clone()
    batches = _batches(2, seed=3)
    for _, y in batches:
        y[y == 2] = 0  # class 2 never seen -> a zero slot (the authors' initialisation)
    initialise_memory(model, batches)
    assert model.training  # restored
    model.eval()
    sums, weights = torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for x, y in batches:
            f = l2_normalize(model(x, encode_only=True)["features"], dim=1)
            m = label_masks(y, 3, f.shape[2:]).double()
            sums += torch.einsum("bkhw,bdhw->kd", m, f)
            weights += m.sum((0, 2, 3))
    expect = l2_normalize(sums[:2] / weights[:2, None], dim=1)
    assert torch.allclose(model.memory.slots[:2], expect, atol=1e-12)
    assert torch.equal(model.memory.slots[2], torch.zeros_like(random_slots[2]))


@pytest.fixture(scope="module")
def sources():
    return [synthetic_domain("sunny", 8, 1, (24, 32)), synthetic_domain("overcast", 8, 2, (24, 32))]


def _train_cfg(**kw):
    net = NetConfig.tiny(num_classes=4, stem=8, widths=(8, 8, 8, 8), aspp_dim=8, decoder_dim=8, low_dim=4).to_dict()
    return ex.TrainConfig(**(dict(method="pinmem", steps=2, batch=2, net=net, init_frames=4) | kw))


def test_train_uses_quarter_lr_inner_step_and_initialises_memory(monkeypatch, sources):
    torch.set_num_threads(1)
    alphas, inits = [], []
    real_meta, real_init = ex.meta_step, ex.initialise_memory

    def meta_spy(model, opt, batches, weights, alpha, rng):
        alphas.append((alpha, opt.param_groups[0]["lr"]))
        return real_meta(model, opt, batches, weights, alpha, rng)

    def init_spy(model, batches):
        inits.append(sum(len(x) for x, _ in batches))
        return real_init(model, batches)

    monkeypatch.setattr(ex, "meta_step", meta_spy)
    monkeypatch.setattr(ex, "initialise_memory", init_spy)
    ex.train(_train_cfg(), sources)
    assert len(alphas) == 2 and alphas[1][1] < alphas[0][1]  # poly-annealed lr
    assert all(a == pytest.approx(lr / 4) for a, lr in alphas)
    assert inits == [2 * 4]  # init_frames from each source domain
    ex.train(_train_cfg(method="erm", steps=1), sources)
    assert inits == [8]  # no memory, no initialisation


def test_paper_default_weights():
    assert LossWeights() == LossWeights(aux=0.4, cohesion=0.02, divergence=0.4, classification=0.2,
                                        cohesion_temperature=1.0)
    assert ex.TrainConfig().inner_lr_ratio == 0.25
    assert NetConfig().momentum == 0.8 and CategoricalMemory(3, 4).momentum == 0.8
    assert SegmentationNet(NetConfig.tiny()).memory.momentum == 0.8
    m = l2_normalize(torch.randn(3, 4, dtype=torch.float64), dim=1)
    sums, w = torch.rand(3, 4, dtype=torch.float64), torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    expect = l2_normalize(0.8 * m[:2] + 0.2 * sums[:2] / w[:2, None], dim=1)
    assert torch.allclose(momentum_update(m, sums, w)[:2], expect)


def test_total_loss_weights_aux_by_04():
    torch.manual_seed(0)
    out = {"logits": torch.randn(1, 3, 4, 4), "aux": torch.randn(1, 3, 2, 2)}
    lab = torch.randint(0, 3, (1, 4, 4))
    loss, parts = total_loss(out, lab, LossWeights())
    assert set(parts) == {"seg", "aux"}
    assert loss.item() == pytest.approx(parts["seg"] + 0.4 * parts["aux"], rel=1e-6)
