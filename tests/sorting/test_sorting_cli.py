"""quintet sort ...: plots, errors as one line, ranking training (tiny) with resume."""

from __future__ import annotations

import json

import pytest
import torch

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.sorting import diffsort, ranking_loss, soft_rank
from quintet.sorting.ranking import (
    MultiDigitSets,
    RankingConfig,
    sklearn_digits_source,
    train_ranking,
)


def test_plot_writes_pngs(tmp_path):
    assert main(["sort", "plot", "--out", str(tmp_path), "--n", "6"]) == 0
    for name in ("sorting_sigmoids.png", "sorting_permutation.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, needle", [
    (["sort", "plot", "--network", "quick"], "unknown sorting network 'quick'; expected one of: odd_even, bitonic"),
    (["sort", "plot", "--relaxation", "softmax"], "unknown relaxation 'softmax'; expected one of: art, cauchy"),
    (["sort", "plot", "--n", "1"], "Invalid value for '--n'"),
    (["sort", "plot", "--n", "-3"], "Invalid value for '--n'"),
    (["sort", "plot", "--steepness", "0"], "Invalid value for '--steepness'"),
    (["sort", "plot", "--steepness", "nan"], "Invalid value for '--steepness'"),
    (["sort", "plot", "--out", "{file}/sub"], "cannot create the folder"),
    (["sort", "train-ranking", "--source", "svhn"], "unknown --source 'svhn'"),
    (["sort", "train-ranking", "--relaxation", ""], "unknown relaxation ''"),
    (["sort", "train-ranking", "--out", "{file}/sub"], "cannot create the folder"),
    (["sort", "train-ranking", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["sort", "train-ranking", "--batch-size", "-3"], "Invalid value for '--batch-size'"),
    (["sort", "train-ranking", "--steps", "0"], "Invalid value for '--steps'"),
    (["sort", "train-ranking", "--steps", "-5"], "Invalid value for '--steps'"),
    (["sort", "train-ranking", "--steepness", "-1"], "Invalid value for '--steepness'"),
    (["sort", "train-ranking", "--n", "100000"], "a training step at n = 100000, batch 32 needs about"),
    (["sort", "train-ranking", "--max-memory", "0.01"], "GiB allowed by --max-memory; lower --n or --batch-size"),
    (["sort", "train-ranking", "--max-memory", "0"], "Invalid value for '--max-memory'"),
    (["sort", "train-ranking", "--max-memory", "0.001"], "GiB allowed by --max-memory"),
    (["sort", "train-ranking", "--max-memory", "nan"], "Invalid value for '--max-memory'"),
    (["sort", "protocol", "--sizes", "1,3"], "--sizes must list sizes >= 2, got '1,3'"),
    (["sort", "protocol", "--networks", "merge"], "unknown sorting network 'merge'"),
    (["sort", "protocol", "--networks", ""], "--networks must list odd_even and/or bitonic"),
    (["sort", "protocol", "--device", "no-such-device"], "--device 'no-such-device' is not available here"),
    (["sort", "protocol", "--budget-minutes", "nan"], "Invalid value for '--budget-minutes'"),
    (["sort", "bench", "--out", "{tmp}/no-such-folder/x.json"], "the folder"),
    (["sort", "bench", "--sizes", "a,b"], "--sizes must be comma-separated integers"),
    (["sort", "bench", "--network", "foo"], "unknown sorting network 'foo'; expected one of: odd_even, bitonic"),
    (["sort", "bench", "--repeats", "0"], "Invalid value for '--repeats'"),
    (["sort", "bench", "--sizes", "1,4"], "--sizes must list sizes >= 2, got '1,4'"),
])
def test_cli_errors_are_one_line(args, needle, capsys, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    args = [a.replace("{file}", str(tmp_path / "file")).replace("{tmp}", str(tmp_path)) for a in args]
    if args[1] in ("plot", "train-ranking", "protocol") and "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and err.startswith("quintet: error: ") and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()  # nothing written for a refused run
    assert not (tmp_path / "no-such-folder").exists()


def test_bench_keeps_an_existing_output(tmp_path, capsys):
    """An existing JSON (such as the committed benchmarks/results/sorting.json) is replaced only
    with --overwrite."""
    out = tmp_path / "sorting.json"
    out.write_text('{"kept": true}')
    assert main(["sort", "bench", "--sizes", "4", "--repeats", "1", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"kept": True}


@pytest.mark.slow
def test_resume_refuses_another_configuration(tmp_path, capsys):
    """A checkpoint written at n = 5 is not loaded under --n 7: the configuration is compared
    before any weights are."""
    out = tmp_path / "run"
    common = ["sort", "train-ranking", "--source", "digits", "--batch-size", "4", "--out", str(out)]
    assert main([*common, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--steps", "3", "--n", "7"]) == 2
    err = capsys.readouterr().err
    assert "holds a checkpoint of another configuration (n: 5 -> 7)" in err and err.count("\n") == 1
    assert main([*common, "--steps", "3"]) == 0  # same settings, more steps: resumes
    assert json.loads((out / "results.json").read_text())["metrics"]["steps"] == 3


def test_bench_accepts_network_alias(tmp_path, capsys):
    """``odd-even`` is quintet's alias; the reference is called with its own spelling ``odd_even``."""
    pytest.importorskip("diffsort")
    out = tmp_path / "bench.json"
    assert main(["sort", "bench", "--network", "odd-even", "--sizes", "5", "--repeats", "1", "--threads", "1",
                 "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["network"] == "odd_even" and row["n"] == 5 and row["max_abs_diff_P"] < 1e-6
    assert row["quintet_runs"] == row["diffsort_runs"] >= 1  # interleaved rounds
    assert row["speedup_cpu_vs_diffsort"] == row["diffsort_cpu_s"] / row["quintet_cpu_s"]


@pytest.mark.parametrize("bad, needle", [
    (torch.tensor([[1.0]]), "n >= 2"),
    (torch.tensor([[1.0, float("nan")]]), "NaN or inf"),
    (torch.tensor([[1.0, float("inf")]]), "NaN or inf"),
    (torch.tensor([[1, 2]]), "floating tensor"),
    (torch.zeros(2, 2, 2), "shape (n,) or (batch, n)"),
])
def test_bad_inputs(bad, needle):
    with pytest.raises(QuintetError, match=None) as info:
        diffsort(bad)
    assert needle in str(info.value)


def test_bad_names_and_values():
    x = torch.randn(2, 4)
    with pytest.raises(QuintetError, match="expected one of: odd_even, bitonic"):
        diffsort(x, network="merge")
    with pytest.raises(QuintetError, match="expected one of: art, cauchy, erf, gaussian"):
        soft_rank(x, relaxation="sinkhorn")
    with pytest.raises(QuintetError, match="steepness must be a positive"):
        diffsort(x, steepness=0)
    with pytest.raises(QuintetError, match="padding"):
        diffsort(x, padding="zeros")
    with pytest.raises(QuintetError, match="permutation"):
        ranking_loss(diffsort(x)[1], torch.tensor([[0, 0, 1, 2], [0, 1, 2, 3]]))


def test_multidigit_sets_compose_images():
    src = sklearn_digits_source()
    sets = MultiDigitSets(*src.train, n=7, digits=4)
    imgs, values = sets.sample(3, torch.Generator().manual_seed(0))
    assert imgs.shape == (3, 7, 8, 32) and values.shape == (3, 7)
    assert all(len(set(row.tolist())) == 7 for row in values)
    labels = src.train[1]
    # every 8x8 tile is an image of the right digit
    tile = imgs[0, 0, :, 8:16]
    digit = int(values[0, 0] // 100 % 10)
    matches = (src.train[0] == tile).flatten(1).all(1).nonzero().flatten()
    assert len(matches) >= 1 and int(labels[matches[0]]) == digit


def test_train_ranking_learns_and_resumes(tmp_path):
    src = sklearn_digits_source()
    cfg = RankingConfig(n=4, steps=4, batch_size=8, eval_every=2, eval_sets=50, checkpoint_every=2, width=(4, 8))
    res = train_ranking(cfg, src, out=tmp_path, log=lambda s: None)
    assert res["steps"] == 4 and 0 <= res["exact_match"] <= 1
    logs = []
    res2 = train_ranking(RankingConfig(**{**cfg.__dict__, "steps": 6}), src, out=tmp_path, log=logs.append)
    assert res2["steps"] == 6 and logs[0] == "resumed from step 4"


def test_train_ranking_cli_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sort", "train-ranking", "--source", "digits", "--steps", "3", "--batch-size", "4",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["steps"] == 3


def test_mnist_source(data_dir):
    from quintet.sorting.ranking import mnist_source

    src = mnist_source(data_dir)
    assert src.train[0].shape == (60000, 28, 28) and src.test[0].shape == (10000, 28, 28)
    imgs, values = MultiDigitSets(*src.test, n=5).sample(2, torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 5, 28, 112)
