"""Model selection rules and the task builders (BiasedSST group counts on the real data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.dro import adversary_pool, bias_sst, group_accuracies, load_task, minmax_select
from quintet.dro.selection import select_checkpoint
from quintet.dro.tasks import BIAS_PREFIX, Vocab, color_mnist


def test_group_accuracies_and_empty_group():
    correct = torch.tensor([True, False, True, True])
    groups = torch.tensor([0, 0, 1, 1])
    accs = group_accuracies(correct, groups, 3)
    assert accs[:2].tolist() == [0.5, 1.0] and math.isnan(accs[2])


def test_pool_rejects_far_adversaries():
    n = 100
    near = torch.zeros(n)
    near[:10] = 1.0  # mild tilt: KL small
    far = torch.full((n,), -50.0)
    far[0] = 0.0  # all mass on one example: KL = log 100 > log 10
    weights, kls = adversary_pool(torch.stack([near, far]))
    assert weights.shape == (2, n)  # uniform + the near one
    assert kls[1] == pytest.approx(math.log(n), rel=1e-6)
    assert torch.allclose(weights.sum(1), torch.ones(2, dtype=torch.float64))


def test_minmax_prefers_uniformly_good_checkpoint():
    # 4 examples; the adversary up-weights the last two (a "minority")
    errors = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    ratios = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    idx, robust = minmax_select(errors, ratios)
    assert idx == 1
    q = torch.softmax(ratios[0].double(), 0)
    assert robust[0] == pytest.approx(float(q[2] + q[3]))
    # with no adversary it is the average rule
    assert minmax_select(errors, None)[0] == 1


def test_select_checkpoint_rules():
    assert select_checkpoint("average", [0.9, 0.8], [0.1, 0.5]) == 0
    assert select_checkpoint("oracle", [0.9, 0.8], [0.1, 0.5]) == 1
    with pytest.raises(QuintetError, match="selection rule"):
        select_checkpoint("best", [0.9], [0.1])


def test_bias_sst_counts_and_prefix():
    sentences = [f"Sentence {i} ." for i in range(200)]
    labels = np.array([0] * 100 + [1] * 100)
    out, biased = bias_sst(sentences, labels, np.random.RandomState(1), {0: 95, 1: 5})
    assert biased[:100].sum() == 95 and biased[100:].sum() == 5
    for s, b, orig in zip(out, biased, sentences):
        assert s.startswith(BIAS_PREFIX) == b
        assert s == (BIAS_PREFIX + "s" + orig[1:] if b else orig)  # first letter lower-cased


def test_vocab_and_colors():
    vocab = Vocab(["a b c", "a b"])
    x = vocab.encode(["a z", "c"])
    assert x.tolist() == [[vocab.stoi["a"], 1], [vocab.stoi["c"], 0]]
    images = np.zeros((1000, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = 255
    digits = np.arange(1000) % 10
    split = color_mnist(images, digits, 0.95, np.random.RandomState(0))
    colour = split.g // 2
    assert split.x.shape == (1000, 2, 14, 14)
    assert abs(float((colour == split.y).float().mean()) - 0.95) < 0.03
    assert torch.all(split.x[torch.arange(1000), 1 - colour] == 0)


def test_biased_sst_group_counts(data_dir):
    """The paper's construction on the GLUE files: 95 % / 5 % prefixed in train and dev, 50 % / 50 % in test."""
    task = load_task("biased-sst", data_dir, sst_source="glue")
    # GLUE SST-2: train 29780 negatives / 37569 positives; dev 428 / 444; test 912 / 909
    assert task.train.group_counts(4) == [29780 - 28291, 37569 - 1878, 28291, 1878]
    assert task.valid.group_counts(4) == [428 - 406, 444 - 22, 406, 22]
    assert task.test.group_counts(4) == [456, 455, 456, 454]
    assert task.group_names == ["no-prefix/neg", "no-prefix/pos", "prefix/neg", "prefix/pos"]


def test_biased_sst_sentences_already_starting_with_prefix(data_dir):
    """GLUE files: 2 train and 1 dev sentence start with "so , ": they stay no-prefix unless drawn."""
    from quintet.dro.tasks import biased_sst_text

    for split, (sentences, _, biased), n_already in zip(("train", "valid", "test"), biased_sst_text(data_dir, "glue").values(),
                                                        (2, 1, 0)):
        starts = np.array([s.startswith(BIAS_PREFIX) for s in sentences])
        assert int((starts & ~biased).sum()) == n_already, split
        assert not np.any(biased & ~starts)


def test_other_tasks_groups(data_dir):
    cm = load_task("colored-mnist", data_dir, n_train=2000)
    agree = (cm.test.g // 2 == cm.test.y).float().mean()
    assert abs(float(agree) - 0.5) < 0.02 and len(cm.train) == 2000 and len(cm.valid) == 2000
    # validation = max(2000, n_train // 5) held-out digits: 4000 at the quick scale
    assert len(load_task("colored-mnist", data_dir, n_train=20000).valid) == 4000
    adult = load_task("adult", data_dir, n_train=1000)
    assert adult.n_groups == 4 and len(adult.test) == 16281
    assert sum(adult.valid.group_counts(4)) == 32561 // 5


def test_bad_task_names():
    with pytest.raises(QuintetError, match="unknown task 'sst'"):
        load_task("sst")
    with pytest.raises(QuintetError, match="text model"):
        load_task("biased-sst", text_model="transformer")
