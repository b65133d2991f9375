"""Network shapes, the first-order meta step, metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from quintet.core.errors import QuintetError
from quintet.segmentation.losses import LossWeights
from quintet.segmentation.meta import inner_params, meta_step, persistent_update, split_domains
from quintet.segmentation.metrics import confusion_matrix, iou_from_confusion, mean_iou
from quintet.segmentation.models import NetConfig, SegmentationNet

SMALL = dict(stem=8, widths=(8, 8, 8, 8), aspp_dim=8, decoder_dim=8, low_dim=4)


def test_forward_shapes_tiny():
    torch.manual_seed(0)
    net = SegmentationNet(NetConfig.tiny(num_classes=5, **SMALL))
    x, y = torch.randn(2, 3, 30, 40), torch.randint(0, 5, (2, 30, 40))
    out = net(x, y, write=True)
    assert out["logits"].shape == (2, 5, 30, 40)
    assert out["features"].shape == (2, 8, 4, 5)  # output stride 8
    assert out["attention"].shape == (2, 4, 5, 5) and out["new_memory"].shape == (5, 8)
    net.eval()
    assert "aux" not in net(x)


def test_channels_last_images_are_trained_as_contiguous():
    """A permuted ``(N, H, W, 3)`` batch (channels-last strides, 4 stem channels: the case whose
    oneDNN backward corrupts memory) reaches the trunk contiguous and trains as the contiguous batch."""
    net = SegmentationNet(NetConfig.tiny(num_classes=4, stem=4, widths=(4, 8, 8, 8), aspp_dim=8, low_dim=4,
                                         decoder_dim=8)).eval()
    seen = []
    net.trunk.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    images = torch.rand(5, 24, 32, 3, generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
    assert not images.is_contiguous() and images.is_contiguous(memory_format=torch.channels_last)
    grads = []
    for x in (images, images.contiguous()):
        net.zero_grad()
        net(x)["logits"].square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    assert seen == [True, True] and torch.equal(grads[0], grads[1])


def test_resnet50_config_shape():
    cfg = NetConfig.resnet50(num_classes=19)
    net = SegmentationNet(cfg)
    n = sum(p.numel() for p in net.trunk.parameters())
    assert 20e6 < n < 30e6  # ResNet-50 trunk is ~23.5 M parameters
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32))
    assert out["logits"].shape == (1, 19, 32, 32) and out["features"].shape == (1, 256, 2, 2)


def test_bad_config():
    with pytest.raises(QuintetError, match="block"):
        NetConfig(block="dense").validate()
    with pytest.raises(QuintetError, match="output_stride"):
        NetConfig(output_stride=4).validate()


def test_split_domains_partitions():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5):
        for _ in range(20):
            tr, te = split_domains(n, rng)
            assert tr and te and sorted(tr + te) == list(range(n))
    with pytest.raises(ValueError):
        split_domains(1, rng)


def test_inner_step_is_first_order():
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(5, 3)
    lin(x).pow(2).sum().backward()
    g = {n: p.grad.clone() for n, p in lin.named_parameters()}
    params = inner_params(lin, 0.1)
    for n, p in lin.named_parameters():
        assert torch.allclose(params[n], p - 0.1 * g[n])
    for p in lin.parameters():
        p.grad = None
    x2 = torch.randn(4, 3)
    torch.func.functional_call(lin, params, (x2,)).sum().backward()
    # d L(θ')/dθ with θ' = θ − α·g (g constant) equals the gradient at θ'
    assert torch.allclose(lin.weight.grad, x2.sum(0, keepdim=True))


def test_meta_step_memory_bookkeeping():
    torch.manual_seed(0)
    net = SegmentationNet(NetConfig.tiny(num_classes=4, **SMALL))
    before = net.memory.slots.clone()
    batches = [(torch.randn(2, 3, 24, 32), torch.randint(0, 3, (2, 24, 32))) for _ in range(2)]  # class 3 absent
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    parts = meta_step(net, opt, batches, LossWeights(), 0.0025, np.random.default_rng(0))
    assert {"tr_seg", "tr_divergence", "tr_classification", "te_seg", "te_cohesion"} <= set(parts)
    assert np.isfinite(parts["total"])
    assert torch.equal(net.memory.slots[3], before[3])
    assert not torch.allclose(net.memory.slots[:3], before[:3])
    assert torch.allclose(net.memory.slots.norm(dim=1), torch.ones(4))
    # the write network receives gradient (from the divergence/classification and meta-test terms)
    assert net.memory.writer.conv.weight.grad is not None and net.memory.writer.conv.weight.grad.abs().sum() > 0
    slots = net.memory.slots.clone()
    persistent_update(net, *batches[0])
    assert net.training and not torch.equal(slots[:3], net.memory.slots[:3])


def test_mldg_step_without_memory():
    torch.manual_seed(0)
    net = SegmentationNet(NetConfig.tiny(num_classes=4, memory=False, **SMALL))
    batches = [(torch.randn(2, 3, 24, 32), torch.randint(0, 4, (2, 24, 32))) for _ in range(3)]
    w0 = net.decoder[-1].weight.clone()
    parts = meta_step(net, torch.optim.SGD(net.parameters(), lr=0.01), batches, LossWeights(), 0.0025,
                      np.random.default_rng(1))
    assert "te_seg" in parts and "tr_divergence" not in parts
    assert not torch.equal(w0, net.decoder[-1].weight)


def test_iou_matches_sklearn():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 500)
    p = np.where(rng.random(500) < 0.6, t, rng.integers(0, 4, 500))
    t_ign = t.copy()
    t_ign[:50] = 255
    conf = confusion_matrix(torch.as_tensor(p), torch.as_tensor(t_ign), 4)
    keep = t_ign != 255
    ref = jaccard_score(t_ign[keep], p[keep], average=None, labels=range(4))
    assert np.allclose(iou_from_confusion(conf), ref)
    assert mean_iou(conf) == pytest.approx(ref.mean())
    # a class absent from truth and prediction is left out of the mean
    conf5 = confusion_matrix(torch.as_tensor(p), torch.as_tensor(t_ign), 5)
    assert np.isnan(iou_from_confusion(conf5)[4]) and mean_iou(conf5) == pytest.approx(ref.mean())
