"""P-DRO with a generative adversary: the language model's likelihood, the two players' objectives,
the base model's cache, the reduction to ERM, exact resume and bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.dro import TrainConfig, train_on
from quintet.dro.experiments import Players
from quintet.dro.generative import (
    GenerativeAdversary,
    JointLM,
    LogNormalizer,
    adversary_targets,
    base_lm,
    joint_log_likelihood,
    pdro_objectives,
)
from quintet.dro.models import ModelSpec
from quintet.dro.tasks import Split, load_task


def _lm(seed: int = 0, dtype: torch.dtype = torch.float64) -> JointLM:
    torch.manual_seed(seed)
    return JointLM(vocab_size=6, n_classes=2, embed_dim=3, hidden=4).to(dtype)


def _hand_log_likelihood(lm: JointLM, words: list[int], label: int) -> float:
    """The same model run one step at a time with an LSTM cell and summed in Python."""
    cell = torch.nn.LSTMCell(lm.lstm.input_size, lm.lstm.hidden_size).to(torch.float64)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(lm.lstm, f"{name}_l0"))
    h = c = torch.zeros(1, lm.lstm.hidden_size, dtype=torch.float64)
    total = float(F.log_softmax(lm.label_logits, 0)[label])
    inputs = [lm.label_embed.weight[label]] + [lm.embed.weight[w] for w in words]
    for step, target in enumerate([*words, lm.eos]):
        h, c = cell(inputs[step].unsqueeze(0), (h, c))
        total += float(F.log_softmax(lm.head(h)[0], 0)[target])
    return total


def test_log_likelihood_equals_the_hand_computed_sum():
    lm = _lm()
    x = torch.tensor([[2, 3, 5, 1], [4, 0, 0, 0], [1, 1, 0, 0]])
    y = torch.tensor([1, 0, 0])
    with torch.no_grad():
        ours = lm(x, y)
        hand = [_hand_log_likelihood(lm, [w for w in row.tolist() if w], int(label)) for row, label in zip(x, y)]
        assert ours.tolist() == pytest.approx(hand, abs=1e-12)
        # more padding changes nothing
        assert torch.allclose(lm(torch.cat([x, torch.zeros(3, 3, dtype=torch.long)], 1), y), ours, atol=1e-12)
        # an LSTM with zero weights predicts the head's bias at every step: a closed form
        for p in (*lm.lstm.parameters(), lm.head.weight):
            p.zero_()
        log_word = F.log_softmax(lm.head.bias, 0)
        log_label = F.log_softmax(lm.label_logits, 0)
        closed = [float(log_label[1] + log_word[[2, 3, 5, 1]].sum() + log_word[6]),
                  float(log_label[0] + log_word[4] + log_word[6])]
        assert lm(x[:2], y[:2]).tolist() == pytest.approx(closed, abs=1e-12)


def test_gradcheck_objectives_and_language_model_in_float64():
    torch.manual_seed(1)
    losses = torch.rand(6, dtype=torch.float64, requires_grad=True)
    ratios = torch.randn(6, dtype=torch.float64, requires_grad=True)
    log_z = float(torch.logsumexp(losses.detach() / 0.5, 0)) - 0.3
    # each player differentiates its own loss in its own input (the other one's is held fixed)
    for reduction in ("mean", "sum"):
        assert torch.autograd.gradcheck(
            lambda ell, red=reduction: pdro_objectives(ell, ratios.detach(), 0.5, log_z, red)[0], (losses,))
    assert torch.autograd.gradcheck(lambda r: pdro_objectives(losses.detach(), r, 0.5, log_z)[1], (ratios,))
    # the adversary's gradient flows through the language model
    lm = _lm(2)
    adversary = GenerativeAdversary(_lm(3))
    x, y = torch.tensor([[2, 3, 1], [4, 5, 0], [3, 0, 0]]), torch.tensor([0, 1, 1])
    fixed = torch.tensor([0.2, 1.1, 0.4], dtype=torch.float64)

    def adversary_loss(head: torch.Tensor) -> torch.Tensor:
        log_q = functional_call(lm, {"head.weight": head}, (x, y))
        return pdro_objectives(fixed, log_q - adversary.base(x, y).detach(), 0.3, 0.9)[1]

    assert torch.autograd.gradcheck(adversary_loss, (lm.head.weight.detach().clone().requires_grad_(),))


def test_objectives_match_their_formulas():
    torch.manual_seed(4)
    losses, ratios = torch.rand(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    model_loss, adversary_loss = pdro_objectives(losses, ratios, 0.2, 1.5)
    w = 5 * torch.softmax(ratios, 0)
    assert float(model_loss) == pytest.approx(float((w * losses).mean()), rel=1e-12)
    assert float(adversary_loss) == pytest.approx(float(-(torch.exp(losses / 0.2 - 1.5) * ratios).sum()), rel=1e-12)
    # normalised by this batch alone the targets sum to 1; at a large temperature they are uniform
    one = LogNormalizer(1)
    assert float(adversary_targets(losses, 0.2, one.update(float(torch.logsumexp(losses / 0.2, 0)))).sum()) == \
        pytest.approx(1.0, rel=1e-12)
    hot = adversary_targets(losses, 1e6, float(torch.logsumexp(losses / 1e6, 0)))
    assert torch.allclose(hot, torch.full_like(hot, 0.2), rtol=1e-6)


def test_log_normalizer_averages_the_last_k_batches():
    norm = LogNormalizer(2)
    assert norm.update(math.log(4.0)) == pytest.approx(math.log(4.0))
    assert norm.update(math.log(2.0)) == pytest.approx(math.log(3.0))
    assert norm.update(math.log(8.0)) == pytest.approx(math.log(5.0))  # 4 has left the window
    assert LogNormalizer(2, norm.history).update(math.log(6.0)) == pytest.approx(math.log(7.0))
    with pytest.raises(QuintetError, match="window K must be an integer >= 1"):
        LogNormalizer(0)


def _text_task(n_train: int = 300):
    """The synthetic task written as sentences: one token per (feature, quarter of [-1, 1]) and a
    length cut after 3 to 8 features; the label is the XOR of features 0 and 1, feature 2 the shortcut."""
    data = load_task("synthetic", n_train=n_train)
    generator = torch.Generator().manual_seed(0)

    def sentences(split: Split) -> Split:
        tokens = 2 + 4 * torch.arange(8) + ((split.x + 1) * 2).long().clamp(0, 3)
        keep = torch.arange(8) < torch.randint(3, 9, (len(split),), generator=generator)[:, None]
        return Split(tokens * keep, split.y, split.g)

    spec = ModelSpec(kind="boe", n_out=2, vocab_size=34, embed_dim=8, hidden=8)
    return replace(data, train=sentences(data.train), valid=sentences(data.valid.subset(torch.arange(400))),
                   test=sentences(data.test.subset(torch.arange(400))), model=spec)


def _final_model(data, checkpoint_dir) -> torch.nn.Module:
    """The classifier of a run's last checkpoint (its adversary, if any, left out)."""
    from quintet.core.io import latest_checkpoint, load_checkpoint
    from quintet.dro.models import build_model

    players = Players(build_model(data.model), None)
    load_checkpoint(latest_checkpoint(checkpoint_dir), players, strict=False)
    return players.model


def test_adversary_at_the_base_model_is_erm(tmp_path):
    data = _text_task()
    common = dict(task="synthetic", epochs=2, n_train=300, lr=3e-3, lm_epochs=1)
    erm = train_on(data, TrainConfig(method="erm", **common), tmp_path / "erm")
    # a vanishing adversary rate keeps q_psi at p_0: every ratio is 1 and the model takes ERM's steps
    pdro = train_on(data, TrainConfig(method="pdro", adv_lr=1e-12, **common), tmp_path / "pdro")
    assert float(pdro["valid_ratios"].abs().max()) < 1e-6
    assert all(abs(w - 1.0) < 1e-5 for row in pdro["weights"] for w in row if w)
    ours, theirs = _final_model(data, tmp_path / "pdro"), _final_model(data, tmp_path / "erm")
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert [h["valid"]["acc"] for h in pdro["history"]] == pytest.approx([h["valid"]["acc"] for h in erm["history"]])


def test_resume_gives_the_same_run(tmp_path):
    # 300 examples: 5 batches of 64 per epoch, so the K = 3 normaliser window spans the checkpoint
    data = _text_task()
    cfg = TrainConfig(task="synthetic", method="pdro", epochs=3, n_train=300, lr=3e-3, adv_lr=3e-3, lm_epochs=1,
                      norm_window=3, tau=0.1)
    straight = train_on(data, cfg, tmp_path / "a")
    train_on(data, replace(cfg, epochs=2), tmp_path / "b")
    messages: list[str] = []
    resumed = train_on(data, cfg, tmp_path / "b", log=messages.append)
    assert any("base language model loaded" in m for m in messages)
    assert any("resumed" in m and "epoch 2" in m for m in messages)
    assert resumed["history"] == straight["history"] and resumed["selection"] == straight["selection"]
    assert resumed["weights"] == straight["weights"]
    assert torch.equal(resumed["valid_ratios"], straight["valid_ratios"])
    assert float(straight["valid_ratios"][-1].abs().max()) > 1e-2  # the adversary moved away from p_0
    from quintet.core.io import latest_checkpoint, load_tensors

    a = load_tensors(latest_checkpoint(tmp_path / "a") / "model.safetensors")
    b = load_tensors(latest_checkpoint(tmp_path / "b") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("adversary.lm.") for k in a) and any(k.startswith("adversary.base.") for k in a)


def test_base_model_is_cached_and_checked(tmp_path):
    data = _text_task(100)
    args = (data.train.x, data.train.y, 34, 2, 8, 8, 1, 0)
    messages: list[str] = []
    first = base_lm(*args, cache_dir=tmp_path, log=messages.append)
    again = base_lm(*args, cache_dir=tmp_path, log=messages.append)
    assert "loaded" not in messages[0] and "loaded" in messages[-1]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    with pytest.raises(QuintetError, match="another configuration"):
        base_lm(data.train.x, 1 - data.train.y, *args[2:], cache_dir=tmp_path)


@pytest.mark.parametrize(("x", "y", "message"), [
    (torch.tensor([[2, 0, 3]]), torch.tensor([0]), "padding .* must only trail"),
    (torch.tensor([[2, 6]]), torch.tensor([0]), r"token ids must lie in \[0, 5\]"),
    (torch.tensor([[2, 3]]), torch.tensor([2]), r"labels must lie in \[0, 1\]"),
    (torch.rand(1, 3), torch.tensor([0]), "token ids of shape"),
    (torch.tensor([[2, 3]]), torch.tensor([0, 1]), "do not match"),
])
def test_bad_tokens_are_refused(x, y, message):
    with pytest.raises(QuintetError, match=message):
        joint_log_likelihood(_lm(), x, y)


def test_bad_options_are_refused(tmp_path, capsys):
    with pytest.raises(QuintetError, match=r"lm_epochs must be an integer in \[1, 1000\], got 0"):
        TrainConfig(method="pdro", lm_epochs=0).validate()
    with pytest.raises(QuintetError, match="pdro models sentences"):
        train_on(load_task("synthetic", n_train=50), TrainConfig(task="synthetic", method="pdro", n_train=50))
    for extra, message in ((["--lm-hidden", "0"], "Invalid value for '--lm-hidden'"),
                           (["--norm-window", "0"], "Invalid value for '--norm-window'"),
                           (["--lm-epochs", "1001"], "Invalid value for '--lm-epochs'")):
        assert main(["dro", "train", "--method", "pdro", "--out", str(tmp_path / "x"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["dro", "train", "--task", "synthetic", "--method", "pdro", "--epochs", "1", "--n-train", "50",
                 "--out", str(tmp_path / "y")]) == 2
    assert "pdro models sentences with a language model" in capsys.readouterr().err
