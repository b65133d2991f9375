"""The authors' protocol: their training recipe, Group DRO variant, greedy and cross-run minmax
selection, the authors' SST-2 files, the authors' model size and the LDA topics of Topic CVaR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quintet.core.errors import QuintetError
from quintet.dro import GroupDRO, TrainConfig, batch_weights, train
from quintet.dro.experiments import Players, equal_group_order, linear_decay
from quintet.dro.models import Adversary, ModelSpec, build_model
from quintet.dro.selection import (
    global_minmax_select,
    greedy_minmax_select,
    minmax_select,
    reverse_kl,
)
from quintet.dro.tasks import BIAS_PREFIX, biased_sst_text, load_task, topic_groups


def test_linear_decay_matches_the_authors_schedule():
    assert [linear_decay(2e-5, s, 4) for s in range(6)] == pytest.approx([2e-5, 1.5e-5, 1e-5, 0.5e-5, 0.0, 0.0])


def _reference_authors_ratio(data, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The authors' training step written out with two separate AdamW optimisers."""
    from quintet.core.seed import seed_everything

    seed_everything(cfg.seed)
    model = build_model(data.model)
    adversary = Adversary(build_model(data.model))
    opt_model = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_adv = torch.optim.AdamW(adversary.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = math.ceil(len(data.train) / cfg.batch_size)
    total, step = cfg.epochs * n_batches, 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        for b in range(n_batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x, y = data.train.x[idx], data.train.y[idx]
            losses = F.cross_entropy(model(x), y, reduction="none")
            log_q = torch.log_softmax(adversary(x, y), 0) + math.log(len(idx))  # --renorm-ratios
            w = log_q.exp()
            model_loss = (w.detach() * losses).sum()
            adv_loss = -(w * losses.detach()).mean() + cfg.tau * (w * log_q).mean()  # --adv-obj fwd_kl
            opt_model.zero_grad()
            opt_adv.zero_grad()
            adv_loss.backward()
            model_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt_model.step()
            step += 1
            for group in opt_model.param_groups:
                group["lr"] = linear_decay(cfg.lr, step, total)
            torch.nn.utils.clip_grad_norm_(adversary.parameters(), cfg.clip_norm)
            opt_adv.step()
    return Players(model, adversary).state_dict()


@pytest.fixture
def float64_default():
    """Models built in float64, so that the two ways of writing the recipe agree to rounding (in
    float32 AdamW turns last-bit differences of near-zero gradients into 1e-5 steps)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_authors_recipe_equals_the_written_out_reference(tmp_path, float64_default):
    from quintet.core.io import latest_checkpoint, load_checkpoint

    data = load_task("synthetic", n_train=300)
    for split in (data.train, data.valid, data.test):
        split.x = split.x.double()
    # lr 0.05 and a clip of 0.5 make the clipping bite on every step
    cfg = TrainConfig(task="synthetic", method="ratio", recipe="authors", epochs=2, n_train=300, lr=0.05,
                      clip_norm=0.5, batch_size=64)
    train(cfg, checkpoint_dir=tmp_path, data=data)
    players = Players(build_model(data.model), Adversary(build_model(data.model)))
    load_checkpoint(latest_checkpoint(tmp_path), players)
    expected = _reference_authors_ratio(data, cfg)
    for name, value in players.state_dict().items():
        assert value.dtype == torch.float64 and torch.allclose(value, expected[name], rtol=0, atol=1e-12), name
    # the adversary moved at the model's rate: far from its zero-initialised head
    assert float(players.adversary.body.net[-1].weight.detach().abs().max()) > 1e-2


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["ratio", "group-dro", "chi2"])
def test_authors_recipe_resumes_exactly(tmp_path, method):
    data = load_task("synthetic", n_train=400)
    cfg = TrainConfig(task="synthetic", method=method, recipe="authors", epochs=3, n_train=400, eta_q=0.1)
    straight = train(cfg, checkpoint_dir=tmp_path / "a", data=data)

    def stop_at_epoch_3(message: str) -> None:
        if "epoch 3:" in message:  # logged before epoch 3 is saved: the run stops after 2 epochs
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, checkpoint_dir=tmp_path / "b", data=data, log=stop_at_epoch_3)
    resumed = train(cfg, checkpoint_dir=tmp_path / "b", data=data)
    assert [h["valid"] for h in resumed["history"]] == [h["valid"] for h in straight["history"]]
    assert resumed["selection"] == straight["selection"]
    assert torch.equal(resumed["valid_errors"], straight["valid_errors"])
    # the decaying rate is planned over the run: another number of epochs is refused
    with pytest.raises(QuintetError, match="rate decays over the whole run"):
        train(TrainConfig(**{**cfg.__dict__, "epochs": 4}), checkpoint_dir=tmp_path / "b", data=data)


def test_group_dro_authors_variant_uses_q_before_the_update():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1])
    dro = GroupDRO(2, eta_q=0.1, variant="authors")
    loss = dro.loss(losses, groups)
    assert float(loss.detach()) == pytest.approx(0.5 * 2.5)  # mean_i q_{g_i} l_i with q = (1/2, 1/2)
    step = torch.tensor([0.1 * 1.5, 0.1 * 3.5], dtype=torch.float64).exp()
    assert torch.allclose(dro.q, step / step.sum())
    ours = GroupDRO(2, eta_q=0.1)
    assert float(ours.loss(losses, groups).detach()) == pytest.approx(float((ours.q * torch.tensor([1.5, 3.5])).sum()))
    with pytest.raises(QuintetError, match="variant"):
        GroupDRO(2, variant="theirs")


def test_equal_group_order_draws_groups_uniformly():
    groups = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    order = equal_group_order(groups, 4, torch.Generator().manual_seed(0))  # group 3 is empty: skipped
    assert len(order) == 1000
    counts = torch.bincount(groups[order], minlength=4).tolist()
    assert counts[3] == 0 and all(abs(c - 333) < 60 for c in counts[:3])
    # within a group the stream is a permutation: the first 90 draws of group 1 cover it once
    ones = order[groups[order] == 1][:90]
    assert sorted(ones.tolist()) == list(range(900, 990))


def test_greedy_minmax_keeps_earlier_decisions():
    # epoch 0 is good on examples 2,3; epoch 1 good on 0,1; the adversary of epoch 1 up-weights 0,1
    errors = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0]])
    w = torch.tensor([1.8, 1.8, 0.2, 0.2])
    log_w = torch.stack([torch.zeros(4), w.log(), torch.zeros(4)])
    assert greedy_minmax_select(errors, log_w) == 1
    # without adversaries the greedy pass is the average rule with ties going to the earliest
    assert greedy_minmax_select(errors, None) == 1
    assert greedy_minmax_select(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), None) == 0
    # after-the-fact minmax over all adversaries can differ from the greedy pass: a late adversary
    # on example 2 makes epoch 0 (wrong on 0, 1) look better than epoch 1 in hindsight
    late = torch.stack([torch.zeros(4), torch.zeros(4), torch.tensor([0.1, 0.1, 3.7, 0.1]).log()])
    assert greedy_minmax_select(errors, late) == 1
    assert minmax_select(errors, late)[0] == 0


def test_far_adversaries_are_dropped_by_reverse_kl():
    n = 100
    far = torch.full((1, n), -60.0)
    far[0, -1] = math.log(n)  # all mass on the last example: KL = log 100 > log 10
    assert float(reverse_kl(far)[0]) == pytest.approx(math.log(n), rel=1e-6)
    errors = torch.tensor([[1.0] + [0.0] * (n - 1), [0.0] * (n - 1) + [0.2]])
    # accepted, the far adversary would keep epoch 0 (epoch 1 errs on the last example); rejected,
    # the pool stays uniform and epoch 1 has the lower mean error
    assert greedy_minmax_select(errors, torch.cat([far, far])) == 1
    assert greedy_minmax_select(errors, torch.cat([far, far]), kl_threshold=10.0) == 0


def test_global_minmax_across_runs():
    errors = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.3]])  # two runs' picks
    pool = torch.stack([torch.zeros(4), torch.tensor([3.0, 0.4, 0.3, 0.3]).log()])
    best, adv = global_minmax_select(errors, pool)
    assert (best, adv) == (1, 0)
    assert global_minmax_select(errors, pool[:1]) == (1, 0)
    with pytest.raises(QuintetError, match="no adversary passes"):
        global_minmax_select(errors, torch.full((1, 4), float("nan")))


def test_authors_model_size_has_learned_initial_states():
    spec = ModelSpec(kind="bilstm", n_out=2, vocab_size=30, embed_dim=300, hidden=300, learned_init=True)
    model = build_model(spec)
    assert model.init_state.shape == (2, 2, 1, 300)
    x = torch.randint(1, 30, (3, 5))
    before = model(x)
    with torch.no_grad():
        model.init_state.add_(1.0)
    assert not torch.allclose(before, model(x))
    assert sum(p.numel() for p in model.parameters()) > 1_400_000  # 2 x 4 x 300 x (300 + 300) LSTM weights


def test_topic_groups_are_deterministic_and_in_range():
    rng = np.random.RandomState(0)
    words = [["goal", "match", "team", "score"], ["film", "actor", "scene", "plot"]]
    sentences = [" ".join(rng.choice(words[i % 2], 6)) for i in range(200)]
    a = topic_groups({"train": sentences, "valid": sentences[:20]}, 2)
    b = topic_groups({"train": sentences, "valid": sentences[:20]}, 2)
    assert torch.equal(a["train"], b["train"]) and a["valid"].shape == (20,)
    topics = a["train"]
    # the two vocabularies land in different topics
    assert set(topics[0::2].tolist()) != set(topics[1::2].tolist())
    with pytest.raises(QuintetError, match="n_topics"):
        topic_groups({"train": sentences}, 1)


def test_config_refuses_bad_values():
    with pytest.raises(QuintetError, match="recipe"):
        TrainConfig(recipe="paper").validate()
    with pytest.raises(QuintetError, match="rho must be a positive"):
        TrainConfig(rho=0.0).validate()
    with pytest.raises(QuintetError, match="topic-cvar needs a text task"):
        TrainConfig(task="synthetic", method="topic-cvar").validate()
    with pytest.raises(QuintetError, match="model size"):
        load_task("biased-sst", model_size="huge")


def test_authors_files_give_their_group_sizes(data_dir):
    """The authors' SST-2 copy, their seed and their startswith rule: the stated group sizes."""
    task = load_task("biased-sst", data_dir)
    assert task.notes["sst_source"] == "pdro"
    assert task.train.group_counts(4) == [1489, 35689, 28291, 1880]
    assert task.valid.group_counts(4) == [22, 421, 406, 23]
    assert task.test.group_counts(4) == [456, 455, 456, 454]
    text = biased_sst_text(data_dir)
    for sentences, _, flags in text.values():
        assert [s.startswith(BIAS_PREFIX) for s in sentences] == flags.tolist()
    assert sum(len(t[0]) for t in text.values()) == 67349 + 872 + 1821


def test_authors_ratio_weights_are_batch_normalised():
    r = torch.randn(64, dtype=torch.float64)
    w = (torch.log_softmax(r, 0) + math.log(64)).exp()
    assert torch.allclose(w, batch_weights(r))
