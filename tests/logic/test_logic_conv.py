"""Convolutional logic trees and OR pooling."""

from __future__ import annotations

import itertools

import torch

from quintet.logic.conv import ConvLogicTree, OrPool, conv_logic_network
from quintet.logic.gates import truth_tables


def test_gradcheck_conv_tree():
    layer = ConvLogicTree(2, 3, kernel_size=3, depth=2, padding=1, init="normal",
                          generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    params = list(layer.parameters())
    assert torch.autograd.gradcheck(lambda x, *p: layer(x), (x, *params))


def test_discrete_tree_is_the_boolean_circuit():
    layer = ConvLogicTree(2, 4, kernel_size=3, depth=2, padding=0, init="normal",
                          generator=torch.Generator().manual_seed(1)).eval()
    x = (torch.rand(3, 2, 4, 5) > 0.5).float()
    out = layer(x)
    table = truth_tables()
    k = 3
    for n, c, i, j in itertools.product(range(3), range(4), range(2), range(3)):
        leaves = []
        for idx in layer.leaf_index[c].tolist():
            ch, off = divmod(idx, k * k)
            dy, dx = divmod(off, k)
            leaves.append(int(x[n, ch, i + dy, j + dx]))
        for logits in layer.levels:
            gates = logits[c].argmax(-1).tolist()
            leaves = [int(table[g, 2 * leaves[2 * t] + leaves[2 * t + 1]]) for t, g in enumerate(gates)]
        assert out[n, c, i, j] == leaves[0]


def test_or_pool_is_or_on_bits():
    x = (torch.rand(2, 3, 4, 4) > 0.7).float()
    pooled = OrPool(2)(x)
    expected = x.reshape(2, 3, 2, 2, 2, 2).amax(dim=(3, 5))
    assert torch.equal(pooled, expected)


def test_conv_network_trains_a_step():
    model = conv_logic_network(classes=10, channels=(4, 8), width=200, depth=2, seed=0)
    x = (torch.rand(6, 784) > 0.5).float()
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(6))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model[1].gate_count(28, 28) == 4 * 3 * 28 * 28


def test_conv_config_trains_and_resumes(tmp_path):
    import numpy as np

    from quintet.logic.data import BinaryDataset
    from quintet.logic.train import TrainConfig, gate_count, load_model, train

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (64, 784)).astype(np.uint8)
    y = rng.integers(0, 10, 64)
    data = BinaryDataset("mnist", x[:48], y[:48], x[48:], y[48:], 10)
    cfg = TrainConfig(dataset="mnist", arch="conv", channels=(2, 4), width=100, depth=1, steps=3,
                      batch_size=16, eval_every=3, tau=10.0)
    res = train(cfg, data, out=tmp_path, log=lambda s: None)
    assert res["gates"] == 2 * 3 * 28 * 28 + 4 * 3 * 14 * 14 + 100 == gate_count(load_model(tmp_path))
    assert train(TrainConfig.from_dict({**cfg.__dict__, "steps": 4}), data, out=tmp_path, log=lambda s: None)["steps"] == 4
