"""Training loop, resume from checkpoints, and the ``quintet dro`` command line (synthetic task)."""

from __future__ import annotations

import json

import pytest
import torch

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.dro import TrainConfig, train
from quintet.dro.tasks import load_task


@pytest.mark.parametrize("method", ["ratio", "ratio-selfnorm", "group-dro"])
def test_resume_gives_the_same_run(tmp_path, method):
    # 700 examples: 11 batches of 64, weights logged every 2, so one batch's weight sums carry over
    # from epoch 2 into epoch 3 across the checkpoint
    data = load_task("synthetic", n_train=700)
    cfg = TrainConfig(task="synthetic", method=method, epochs=3, n_train=700, adv_lr=1e-3)
    straight = train(cfg, checkpoint_dir=tmp_path / "a", data=data)
    train(TrainConfig(**{**cfg.__dict__, "epochs": 2}), checkpoint_dir=tmp_path / "b", data=data)
    messages = []
    resumed = train(cfg, checkpoint_dir=tmp_path / "b", data=data, log=messages.append)
    assert any("resumed" in m and "epoch 2" in m for m in messages)
    assert [h["valid"] for h in resumed["history"]] == [h["valid"] for h in straight["history"]]
    assert resumed["selection"] == straight["selection"]
    assert torch.equal(resumed["valid_errors"], straight["valid_errors"])
    assert resumed["weights"] == straight["weights"]
    assert bool(straight["weights"]) == method.startswith("ratio")


def test_resume_refuses_fewer_epochs(tmp_path):
    data = load_task("synthetic", n_train=200)
    cfg = TrainConfig(task="synthetic", method="erm", epochs=2, n_train=200)
    train(cfg, checkpoint_dir=tmp_path, data=data)
    with pytest.raises(QuintetError, match="already holds 2 epochs, more than the 1 asked for"):
        train(TrainConfig(**{**cfg.__dict__, "epochs": 1}), checkpoint_dir=tmp_path, data=data)
    # asking for exactly the saved epochs returns the finished run without training further
    assert [h["epoch"] for h in train(cfg, checkpoint_dir=tmp_path, data=data)["history"]] == [1, 2]


def test_resume_refuses_checkpoint_without_weight_sums(tmp_path):
    from quintet.core.io import atomic_write_json, latest_checkpoint

    data = load_task("synthetic", n_train=200)
    cfg = TrainConfig(task="synthetic", method="ratio", epochs=1, n_train=200)
    train(cfg, checkpoint_dir=tmp_path, data=data)
    state_file = latest_checkpoint(tmp_path) / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["extra"]["weight_sums"]
    atomic_write_json(state_file, state)
    with pytest.raises(QuintetError, match="predates the saved weight sums"):
        train(TrainConfig(**{**cfg.__dict__, "epochs": 2}), checkpoint_dir=tmp_path, data=data)


def test_resume_refuses_other_config(tmp_path):
    data = load_task("synthetic", n_train=200)
    train(TrainConfig(task="synthetic", method="erm", epochs=1, n_train=200), checkpoint_dir=tmp_path, data=data)
    with pytest.raises(QuintetError, match="another configuration"):
        train(TrainConfig(task="synthetic", method="erm", epochs=1, n_train=200, lr=0.5), checkpoint_dir=tmp_path, data=data)
    # another method adds an adversary to the checkpoint's shapes: still the clear error, not a load failure
    with pytest.raises(QuintetError, match="method"):
        train(TrainConfig(task="synthetic", method="ratio", epochs=1, n_train=200), checkpoint_dir=tmp_path, data=data)


def test_ratio_adversary_upweights_minority_groups():
    data = load_task("synthetic")
    result = train(TrainConfig(task="synthetic", method="ratio", epochs=12, seed=0), data=data)
    final = result["weights"][-1]  # groups: spurious-/y=0, spurious-/y=1 (minority), spurious+/y=0 (minority), ...
    assert min(final[1], final[2]) > 2.0 > 1.0 > max(final[0], final[3])
    for h in result["history"]:
        assert 0 <= h["valid_kl"] < 2.302585 + 5


def test_cli_train_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    def args(epochs: int) -> list[str]:
        return ["dro", "train", "--task", "synthetic", "--method", "ratio", "--epochs", str(epochs),
                "--n-train", "300", "--out", str(out)]

    assert main(args(2)) == 0
    assert (out / "checkpoints" / "latest").is_file() and (out / "results.json").is_file()
    assert main(args(3)) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "epoch 3" in text and "minmax" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "mnist-c"], "Invalid value for '--task': Value error, 'mnist-c' is not one of"),
        (["--method", "dro"], "Invalid value for '--method': Value error, 'dro' is not one of"),
        (["--method", "cvar", "--alpha", "0"], "Invalid value for '--alpha': 0.0 is not in (0, 1]"),
        (["--method", "cvar", "--alpha", "1.01"], "Invalid value for '--alpha'"),
        (["--tau", "0"], "Invalid value for '--tau': 0.0 is not in (0, 10000]"),
        (["--tau", "-0.5"], "Invalid value for '--tau'"),
        (["--epochs", "0"], "Invalid value for '--epochs': Input should be greater than or equal to 1"),
        (["--batch-size", "1"], "Invalid value for '--batch-size'"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, extra, message):
    code = main(["dro", "train", "--task", "synthetic", "--out", str(tmp_path / "x"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_smoke(tmp_path, data_dir):
    from quintet.dro.reproduce import PROTOCOLS, run_reproduce

    def go():
        return run_reproduce(tmp_path, quick=True, epochs=2, n_seeds=2, n_train=300, data_dir=data_dir,
                             log=lambda m: None)

    metrics = go()
    summary = metrics["summary"]
    assert set(summary["current"]) == set(PROTOCOLS["current"]["methods"])
    assert set(summary["authors"]) == {*PROTOCOLS["authors"]["methods"], "ratio (global minmax)"}
    assert set(summary["authors"]["erm"]) == {"average", "minmax", "greedy-minmax", "oracle"}
    assert len(summary["authors"]["ratio"]["greedy-minmax"]["worst_per_seed"]) == 2
    assert set(summary["authors"]["ratio (global minmax)"]["greedy-minmax"]["runs"]) <= {"ratio", "ratio-selfnorm"}
    for name in ("results.json", "results.md", "dro_weights.png", "dro_worst_group.png"):
        assert (tmp_path / name).is_file()
    text = (tmp_path / "results.md").read_text()
    assert "Which difference moved which number" in text and "CVaR α = 0.2" in text
    # finished runs are kept and reused: a second call trains nothing and gives the same numbers
    assert (tmp_path / ".checkpoints" / "authors" / "ratio-seed0").is_dir()
    assert go()["summary"] == summary


def test_models_padding_and_adversary_start():
    from quintet.dro import Adversary, ModelSpec, build_model

    torch.manual_seed(0)
    for kind in ("bilstm", "boe"):
        model = build_model(ModelSpec(kind, 2, vocab_size=50))
        x = torch.randint(1, 50, (3, 5))
        padded = torch.cat([x, torch.zeros(3, 4, dtype=torch.long)], 1)
        assert torch.allclose(model(x), model(padded), atol=1e-6)
    adv = Adversary(build_model(ModelSpec("cnn", 2, in_channels=2)))
    assert torch.equal(adv(torch.rand(4, 2, 14, 14), torch.tensor([0, 1, 1, 0])), torch.zeros(4))
