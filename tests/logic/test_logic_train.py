"""Training: exact resume, architecture checks, loading; a short real MONK-1 run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.logic.data import BinaryDataset
from quintet.logic.train import TrainConfig, batch_indices, load_model, train


def _toy_data() -> BinaryDataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (300, 12)).astype(np.uint8)
    y = (x[:, 0] ^ x[:, 1]).astype(np.int64)
    return BinaryDataset("monk1", x[:200], y[:200], x[200:], y[200:], 2)


CFG = TrainConfig(dataset="monk1", width=16, depth=2, steps=12, batch_size=32, eval_every=4)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_resume_is_exact(tmp_path):
    data = _toy_data()
    straight = train(CFG, data, out=tmp_path / "a", log=lambda s: None)
    train(TrainConfig.from_dict({**CFG.__dict__, "steps": 8}), data, out=tmp_path / "b", log=lambda s: None)
    resumed = train(CFG, data, out=tmp_path / "b", log=lambda s: None)
    assert resumed["steps"] == straight["steps"] == 12
    assert torch.equal(_params(straight["model"]), _params(resumed["model"]))
    loaded = load_model(tmp_path / "b")
    assert torch.equal(_params(loaded), _params(resumed["model"]))
    assert not loaded.training


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    data = _toy_data()
    train(CFG, data, out=tmp_path, log=lambda s: None)
    wider = TrainConfig.from_dict({**CFG.__dict__, "width": 20, "steps": 20})
    with pytest.raises(QuintetError, match="another architecture: width=16"):
        train(wider, data, out=tmp_path, log=lambda s: None)


def test_load_model_errors(tmp_path):
    with pytest.raises(QuintetError, match="no checkpoint"):
        load_model(tmp_path)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(100, 25, step, seed=3) for step in range(4)])
    assert sorted(seen.tolist()) == list(range(100))
    assert torch.equal(batch_indices(100, 25, 5, 3), batch_indices(100, 25, 5, 3))
    assert len(batch_indices(10, 32, 0, 0)) == 10


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "iris"}, "unknown data set"), ({"connections": "ring"}, "wiring scheme"),
    ({"width": 0}, "width"), ({"lr": 0.0}, "lr"),
])
def test_bad_configs(kwargs, message):
    with pytest.raises(QuintetError, match=message):
        TrainConfig(**kwargs)


def test_learns_xor_of_two_inputs():
    res = train(TrainConfig(dataset="monk1", width=16, depth=2, steps=400, batch_size=50, eval_every=100, lr=0.05),
                _toy_data(), log=lambda s: None)
    losses = [h["loss"] for h in res["history"]]
    assert res["test_acc_relaxed"] >= 0.9 and losses[-1] < losses[0]


@pytest.mark.slow
def test_monk1_reaches_high_accuracy(data_dir):
    from quintet.logic.data import load_binary

    res = train(TrainConfig(dataset="monk1", width=60, depth=4, steps=1500, eval_every=1500),
                load_binary("monk1", data_dir), log=lambda s: None)
    assert res["test_acc_discrete"] >= 0.95 and res["gates"] == 240
