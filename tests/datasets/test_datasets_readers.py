"""Each reader on the real files, asserting the published sizes and label counts."""

from __future__ import annotations

import numpy as np
import pytest

from quintet import datasets as ds


def test_mnist_sizes_and_label_counts(data_dir):
    images, labels = ds.load_mnist("train", data_dir)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert images.mean() / 255 == pytest.approx(0.1307, abs=1e-4)  # the data README's train mean
    images, labels = ds.load_mnist("test", data_dir)
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.mean() / 255 == pytest.approx(0.1325, abs=1e-3)  # the test split's mean


def test_adult_rows_and_encoding(data_dir):
    train, test = ds.load_adult("train", data_dir), ds.load_adult("test", data_dir)
    assert (len(train), len(test)) == (32561, 16281)
    assert int(train.labels.sum()) == 7841 and int(test.labels.sum()) == 3846
    assert sorted(set(train.columns["sex"])) == ["Female", "Male"]
    x_train, x_test = train.encode(), test.encode(train)
    assert x_train.shape[1] == x_test.shape[1]
    assert np.allclose(x_train[:, 0].mean(), 0, atol=1e-5) and np.allclose(x_train[:, 0].std(), 1, atol=1e-4)


def test_breast_cancer_rows(data_dir):
    data = ds.load_breast_cancer(data_dir)
    assert len(data) == 286 and np.bincount(data.labels).tolist() == [201, 85]
    assert "?" in set(data.columns["node-caps"])  # missing values are kept as '?'


@pytest.mark.parametrize("problem,train_size", [(1, 124), (2, 169), (3, 122)])
def test_monks_sizes(data_dir, problem, train_size):
    assert len(ds.load_monks(problem, "train", data_dir)) == train_size
    test = ds.load_monks(problem, "test", data_dir)
    assert len(test) == 432 and test.encode().shape == (432, 17)


def test_sst2_rows(data_dir):
    sizes = {split: len(ds.load_sst2(split, data_dir)) for split in ("train", "dev", "test")}
    assert sizes == {"train": 67349, "dev": 872, "test": 1821}
    test = ds.load_sst2("test", data_dir)
    assert set(test.labels.tolist()) == {0, 1} and test.sentences[0].startswith("no movement")


def test_sst_harvard_files(data_dir):
    assert len(ds.load_sst_harvard("sst2", "test", data_dir)) == 1821
    assert len(ds.load_sst_harvard("trec", "test", data_dir)) == 500
    mr = ds.load_sst_harvard("mr", data_dir=data_dir)
    assert len(mr) == 10662 and np.bincount(mr.labels).tolist() == [5331, 5331]


def test_pararel(data_dir):
    relations = ds.pararel_relations(data_dir)
    assert len(relations) == 39 and "P36" in relations
    templates = ds.load_pararel_templates("P36", data_dir)
    assert templates[0].pattern == "The capital of [X] is [Y] ."
    facts = ds.load_trex_facts("P36", data_dir)
    assert facts[0].subject and facts[0].object
    bags = ds.load_kn_bags(data_dir)
    assert len(bags) == 937 and all("[MASK]" in p.prompt for bag in bags for p in bag)
    assert bags[0][0].answer == "Alberta"
    assert ds.load_lama_relations(data_dir)["P19"]["label"] == "place of birth"


def test_camvid_splits_and_sequences(data_dir):
    splits = ds.load_camvid(data_dir)
    assert {k: len(v) for k, v in splits.items()} == {"train": 367, "val": 101, "test": 233}
    assert splits["train"].images.shape[1:] == (90, 120, 3)
    sequences = np.concatenate([s.sequences for s in splits.values()])
    counts = dict(zip(*np.unique(sequences, return_counts=True)))
    assert counts["0001TP"] == 124 and counts["Seq05VD"] == 171
    assert len(ds.CAMVID_CLASSES) == 11


def test_sketchgraphs_sample(data_dir):
    documents = list(ds.sketchgraphs_documents(data_dir))
    assert len(documents) == 84
    assert sum(len(features) for _, features in documents) == 237
