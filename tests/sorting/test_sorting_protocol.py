"""The ranking experiment at the papers' protocol: the sampler with equal values, validation-based
selection, exact resumption, round-robin pieces under a budget, the memory estimate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.core.io import load_tensors
from quintet.sorting.losses import ranks_from_scores
from quintet.sorting.protocol import PAPER_STEPS, protocol_config, run_protocol, steps_done
from quintet.sorting.ranking import (
    MultiDigitSets,
    RankingConfig,
    check_memory,
    estimate_memory,
    sklearn_digits_source,
    train_ranking,
)


@pytest.fixture(scope="module")
def digits():
    return sklearn_digits_source()


def _tiny(**changes) -> RankingConfig:
    base = protocol_config(3, "odd_even", steps=6, batch_size=4, width=(4, 8), valid_size=300, valid_sets=40,
                           eval_every=2, eval_sets=40, checkpoint_every=2)
    return replace(base, **changes)


def test_protocol_config_is_the_papers():
    cfg = protocol_config(5, "bitonic")
    assert (cfg.batch_size, cfg.lr, cfg.width, cfg.steps) == (100, 10 ** -3.5, (32, 64), PAPER_STEPS)
    assert cfg.ties and cfg.valid_size == 5000 and cfg.relaxation == "cauchy"


def test_sampler_with_ties_draws_digits_independently(digits):
    sets = MultiDigitSets(*digits.train, n=3, digits=1, ties=True)
    _, values = sets.sample(400, torch.Generator().manual_seed(0))
    assert values.min() >= 0 and values.max() <= 9
    repeated = (values[:, 0] == values[:, 1]) | (values[:, 1] == values[:, 2]) | (values[:, 0] == values[:, 2])
    assert 0.1 < repeated.float().mean() < 0.5  # 1 - 0.9 * 0.8 = 0.28 expected
    with pytest.raises(QuintetError, match="n = 11 distinct 1-digit numbers do not exist"):
        MultiDigitSets(*digits.train, n=11, digits=1)
    # equal values are ranked in their stable order, as the loss's true permutation
    assert ranks_from_scores(torch.tensor([[2, 1, 2, 1]])).tolist() == [[2, 0, 3, 1]]


def test_resume_gives_identical_parameters(digits, tmp_path):
    """k steps in one go vs j steps, then a resumed run to k: identical weights and optimiser."""
    cfg = _tiny()
    whole = train_ranking(cfg, digits, out=tmp_path / "whole", log=lambda s: None)
    train_ranking(cfg, digits, out=tmp_path / "split", until=3, log=lambda s: None, evaluate=False)
    resumed = train_ranking(cfg, digits, out=tmp_path / "split", log=lambda s: None)
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert whole["curve"] == resumed["curve"] and whole["best_step"] == resumed["best_step"]
    assert whole["exact_match"] == resumed["exact_match"]


def test_test_score_is_taken_at_the_best_validation_step(digits, tmp_path):
    res = train_ranking(_tiny(steps=8), digits, out=tmp_path, log=lambda s: None)
    valid = [c for c in res["curve"] if c["split"] == "valid"]
    best = max(valid, key=lambda c: c["exact_match"])  # first maximum wins
    assert res["best_step"] == best["step"] and res["valid_exact_match"] == best["exact_match"]
    saved = load_tensors(tmp_path / "best.safetensors")
    if res["best_step"] != 8:
        assert any(not torch.equal(saved[k], v) for k, v in res["model"].state_dict().items())


def test_run_protocol_round_robin_and_budget(digits, tmp_path):
    cfgs = [_tiny(), _tiny(n=4, network="bitonic")]
    out = run_protocol(cfgs, digits, tmp_path, budget_s=None, piece=4, log=lambda s: None)
    assert [r["steps"] for r in out] == [6, 6] and all(0 <= r["exact_match"] <= 1 for r in out)
    # a spent budget trains nothing more and still scores what is there
    longer = [replace(c, steps=50) for c in cfgs]
    again = run_protocol(longer, digits, tmp_path, budget_s=0, piece=4, log=lambda s: None)
    assert [r["steps"] for r in again] == [6, 6]
    assert steps_done(tmp_path / "odd_even-n3") == 6


def test_resume_refuses_another_configuration(digits, tmp_path):
    train_ranking(_tiny(), digits, out=tmp_path, until=2, evaluate=False, log=lambda s: None)
    with pytest.raises(QuintetError, match=r"another configuration \(batch_size: 4 -> 5\)"):
        train_ranking(_tiny(batch_size=5), digits, out=tmp_path, log=lambda s: None)
    # the number of steps and the test-set size may change
    res = train_ranking(_tiny(steps=4, eval_sets=20), digits, out=tmp_path, log=lambda s: None)
    assert res["steps"] == 4


def test_memory_estimate():
    small = estimate_memory(RankingConfig(n=5, batch_size=32))
    assert estimate_memory(RankingConfig(n=5, batch_size=64)) > 1.9 * small
    assert estimate_memory(RankingConfig(n=100_000, network="odd_even")) > 2**50  # P and its layers
    with pytest.raises(QuintetError, match=r"needs about .* GiB, more than the 0\.0 GiB allowed by --max-memory"):
        check_memory(RankingConfig(n=5), max_bytes=1000)
    assert check_memory(RankingConfig(n=5), max_bytes=2**40) == small


@pytest.mark.parametrize("bad, needle", [
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"batch_size": -3}, "batch_size must be an integer >= 1, got -3"),
    ({"n": 1}, "n must be an integer >= 2, got 1"),
    ({"valid_size": 5000}, "valid_size must be in 0..1256"),
])
def test_bad_configuration(digits, bad, needle):
    with pytest.raises(QuintetError) as info:
        train_ranking(replace(_tiny(), **bad), digits, log=lambda s: None)
    assert needle in str(info.value)


def test_reproduce_writes_the_report(digits, tmp_path, monkeypatch):
    """``reproduce`` end to end on a tiny stand-in (digits, 2 steps per run): results.json with a
    row per (network, n), results.md with the papers' columns, the curve PNG; no checkpoints left."""
    import json

    from quintet.sorting import cli, protocol, ranking

    monkeypatch.setattr(ranking, "mnist_source", lambda: digits)
    monkeypatch.setattr(protocol, "protocol_config",
                        lambda n, network, seed=0, eval_sets=40: _tiny(n=n, network=network, steps=2, seed=seed))
    cli.reproduce(tmp_path, quick=True, seed=0)
    rows = json.loads((tmp_path / "results.json").read_text())["metrics"]["results"]
    assert {(r["network"], r["n"]) for r in rows} == {(net, n) for net in ("odd_even", "bitonic") for n in (3, 5, 7)}
    assert all(r["steps"] == 2 and r["fraction_of_paper_steps"] == 2 / PAPER_STEPS for r in rows)
    md = (tmp_path / "results.md").read_text()
    assert "2 (0.00 %)" in md and "NeuralSort" in md and "not shown" in md
    assert (tmp_path / "sorting_training_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "work").exists()
