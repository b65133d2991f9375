"""The supervision tasks at toy scale: data, the blackbox gradient, exact resumption, the
reproduction pipeline end to end (with scikit-learn digits instead of MNIST) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import quintet.algovision.reproduce as repro
from quintet.algovision.edit_distance import levenshtein
from quintet.algovision.edit_task import EditConfig, StringPairs, matched_accuracy
from quintet.algovision.path_task import PathConfig, blackbox_shortest_path, train_path
from quintet.algovision.shortest_path import dijkstra
from quintet.algovision.sorting_task import SortingConfig
from quintet.algovision.terrain import TERRAINS, make_terrain
from quintet.cli import main
from quintet.sorting.ranking import sklearn_digits_source


def test_terrain_is_deterministic_and_consistent():
    a, b = make_terrain(5, size=6, seed=3), make_terrain(5, size=6, seed=3)
    assert torch.equal(a.images, b.images) and a.images.shape == (5, 3, 48, 48)
    costs = torch.tensor([t[1] for t in TERRAINS])
    assert torch.equal(a.costs, costs[a.types])
    assert torch.allclose((a.paths * a.costs).sum((1, 2)), a.path_costs)
    assert a.paths[:, 0, 0].all() and a.paths[:, -1, -1].all()


def test_blackbox_gradient_formula():
    cost = torch.ones(1, 3, 3, dtype=torch.float64, requires_grad=True)
    path = blackbox_shortest_path(cost, 2.0)
    grad = torch.zeros(1, 3, 3, dtype=torch.float64)
    grad[0, 1, 1] = 1.0  # make the centre (on the diagonal path) expensive
    path.backward(grad)
    assert path[0].diagonal().sum() == 3
    detour = torch.from_numpy(dijkstra((cost + 2.0 * grad).detach().numpy())[0]).double()
    assert detour[0, 1, 1] == 0  # the perturbed solver leaves the centre
    assert torch.equal(cost.grad, -(path.detach() - detour) / 2.0)
    assert cost.grad[0, 1, 1] < 0  # a dearer centre lowers a loss that grows with its use


def test_string_pairs_distances_are_true():
    images = torch.arange(20.0).reshape(20, 1, 1).expand(20, 2, 2)
    labels = torch.arange(20) % 10
    pairs = StringPairs(images, labels, length=4, edits=3)
    a, b, dist = pairs.sample(16, torch.Generator().manual_seed(0))
    la = (a[:, :, 0, 0] % 10).long().tolist()
    lb = (b[:, :, 0, 0] % 10).long().tolist()
    assert dist.tolist() == [float(levenshtein(x, y)) for x, y in zip(la, lb)]
    assert matched_accuracy(np.array([3, 3, 1, 1]), np.array([0, 0, 2, 2])) == 1.0


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_resumes_exactly(tmp_path):
    cfg = PathConfig(method="relaxed", size=5, train_maps=12, test_maps=4, steps=4, batch_size=3, eval_every=2)
    data = (make_terrain(12, size=5, seed=0), make_terrain(4, size=5, seed=1))
    straight = train_path(cfg, data=data, log=lambda s: None)
    first = train_path(PathConfig(**{**cfg.__dict__, "steps": 2}), out=tmp_path, data=data, log=lambda s: None)
    assert first["steps"] == 2
    with pytest.raises(Exception, match="another configuration"):  # a changed configuration is refused
        train_path(PathConfig(**{**cfg.__dict__, "steps": 4, "beta": 3.0}), out=tmp_path, data=data, log=lambda s: None)
    resumed = train_path(cfg, out=tmp_path, data=data, log=lambda s: None)
    assert resumed["steps"] == 4
    assert torch.equal(_params(resumed["model"]), _params(straight["model"]))


def test_reproduce_pipeline(tmp_path, monkeypatch):
    tiny = {"sorting": [SortingConfig(method=m, n=3, steps=3, width=(4, 8), eval_sets=20, eval_every=3)
                        for m in ("bubble", "odd_even")],
            "paths": [PathConfig(method=m, size=5, train_maps=10, test_maps=4, steps=2, batch_size=2, eval_every=2)
                      for m in ("relaxed", "regression", "blackbox")],
            "edit": EditConfig(length=3, steps=2, batch_size=4, eval_digits=50, eval_every=2),
            "limits": {"sorting": None, "paths": None, "edit": None}}
    monkeypatch.setattr(repro, "plan", lambda quick, seed: tiny)
    monkeypatch.setattr("quintet.sorting.ranking.mnist_source", lambda: sklearn_digits_source(0))
    result = repro.reproduce(tmp_path, quick=True, seed=0, log=lambda s: None)
    assert [r["steps"] for r in result["sorting"]] == [3, 3]
    assert all(0.0 <= r["exact_match"] <= 1.0 for r in result["paths"])
    md = (tmp_path / "results.md").read_text()
    assert "relaxed bubble sort" in md and "blackbox differentiation" in md and "character accuracy" in md
    for name in ("algovision_sorting.png", "algovision_paths.png", "algovision_edit.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results.json").read_text())["metrics"]["edit"]["steps"] == 2
    assert not (tmp_path / "work").exists()


def test_cli_shortest_path(tmp_path, capsys):
    costs = make_terrain(2, size=6, seed=0).costs.numpy()
    np.save(tmp_path / "c.npy", costs)
    assert main(["algovision", "shortest-path", str(tmp_path / "c.npy"), "--out", str(tmp_path / "p.npy"),
                 "--hard"]) == 0
    assert np.array_equal(np.load(tmp_path / "p.npy"), make_terrain(2, size=6, seed=0).paths.numpy())


@pytest.mark.parametrize("args, needle", [
    (["algovision", "train-path", "--method", "astar"], "unknown path method 'astar'; expected one of"),
    (["algovision", "train-sorting", "--method", "quick"], "unknown sorting method 'quick'"),
    (["algovision", "train-path", "--beta", "0"], "--beta"),
    (["algovision", "train-edit", "--steps", "0"], "--steps"),
])
def test_cli_errors_are_one_line(args, needle, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) <= 3


def test_cli_rejects_bad_cost_files(tmp_path, capsys):
    np.save(tmp_path / "neg.npy", -np.ones((3, 3)))
    (tmp_path / "junk.npy").write_text("not an array")
    for name, needle in (("neg.npy", "costs must be positive"), ("junk.npy", "cannot read")):
        assert main(["algovision", "shortest-path", str(tmp_path / name), "--out", str(tmp_path / "o.npy")]) == 2
        assert needle in capsys.readouterr().err
