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
    (["sort", "plot", "--n", "1"], "n >= 2"),
    (["sort", "train-ranking", "--source", "svhn"], "unknown source 'svhn'"),
    (["sort", "bench", "--sizes", "a,b"], "--sizes must be comma-separated integers"),
    (["sort", "bench", "--network", "foo"], "unknown sorting network 'foo'; expected one of: odd_even, bitonic"),
    (["sort", "bench", "--repeats", "0"], "repeats must be an integer >= 1"),
    (["sort", "bench", "--sizes", "1,4"], "every size must be an integer n >= 2, got [1]"),
])
def test_cli_errors_are_one_line(args, needle, capsys, tmp_path):
    if args[1] == "plot":
        args = [*args, "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_bench_accepts_network_alias(tmp_path, capsys):
    """``odd-even`` is quintet's alias; the reference is called with its own spelling ``odd_even``."""
    pytest.importorskip("diffsort")
    out = tmp_path / "bench.json"
    assert main(["sort", "bench", "--network", "odd-even", "--sizes", "5", "--repeats", "1", "--threads", "1",
                 "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["network"] == "odd_even" and row["n"] == 5 and row["max_abs_diff_P"] < 1e-6


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
