"""The papers' binary encodings."""

from __future__ import annotations

import numpy as np
import pytest

from quintet.core.errors import QuintetError
from quintet.datasets.tabular import TabularData
from quintet.logic.data import binarize_mnist, crop_mnist_20x20, encode_adult, load_binary


def test_binarize_threshold_is_half():
    images = np.array([[[0, 127, 128, 255]]], dtype=np.uint8)
    assert binarize_mnist(images).tolist() == [[0, 0, 1, 1]]


def test_crop_keeps_the_digit_and_prefers_empty_lines():
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 10:18, 2:6] = 200  # touches the left: all eight columns come off the right
    cropped = crop_mnist_20x20(image)
    assert cropped.shape == (1, 20, 20) and cropped.sum() == image.sum()
    full = np.full((1, 28, 28), 9, dtype=np.uint8)
    with pytest.raises(QuintetError, match="20x20 crop"):
        crop_mnist_20x20(full)


def test_adult_bins_and_missing_rows():
    columns = {
        "age": np.array([20.0, 30.0, 70.0]), "workclass": np.array(["Private", "?", "State-gov"]),
        "fnlwgt": np.array([1.0, 1.0, 1.0]), "education": np.array(["Bachelors"] * 3),
        "education-num": np.array([1.0, 1.0, 1.0]), "marital-status": np.array(["Divorced"] * 3),
        "occupation": np.array(["Sales"] * 3), "relationship": np.array(["Wife"] * 3),
        "race": np.array(["White"] * 3), "sex": np.array(["Male"] * 3),
        "capital-gain": np.array([0.0, 10.0, 6000.0]), "capital-loss": np.array([0.0, 0.0, 100.0]),
        "hours-per-week": np.array([12.0, 40.0, 60.0]), "native-country": np.array(["Cuba"] * 3),
    }
    numeric = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    x, y = encode_adult(TabularData(columns, np.array([0, 1, 1]), ["<=50K", ">50K"], numeric))
    assert x.shape == (2, 116) and y.tolist() == [0, 1] and (x.sum(1) == 12).all()
    hours = x[:, -6:]
    assert hours[0].tolist() == [0, 1, 0, 0, 0, 0] and hours[1].tolist() == [0, 0, 0, 0, 0, 1]
    age = x[:, 99:104]
    assert age[0].tolist() == [1, 0, 0, 0, 0] and age[1].tolist() == [0, 0, 0, 0, 1]


def test_unknown_dataset():
    with pytest.raises(QuintetError, match="unknown data set 'iris'"):
        load_binary("iris")


@pytest.mark.parametrize("name, shape, test_rows", [
    ("monk1", (124, 17), 432), ("monk2", (169, 17), 432), ("monk3", (122, 17), 432),
    ("breast_cancer", (207, 51), 70), ("adult", (30162, 116), 15060),
])
def test_real_tables(data_dir, name, shape, test_rows):
    data = load_binary(name, data_dir)
    assert data.x_train.shape == shape and len(data.x_test) == test_rows
    assert set(np.unique(data.x_train)) <= {0, 1}


def test_real_mnist_crop(data_dir):
    data = load_binary("mnist20x20", data_dir, limit=500)
    assert data.x_train.shape == (500, 400) and data.x_test.shape == (10000, 400)
