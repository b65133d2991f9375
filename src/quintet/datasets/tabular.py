"""UCI tables: Adult, Breast Cancer (Ljubljana) and the MONK's problems."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quintet.core.errors import QuintetError
from quintet.datasets.registry import require_file


@dataclass
class TabularData:
    """Columns by name (numeric as float64, categorical as str; missing = NaN or "?") and labels."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray
    label_names: list[str]
    numeric: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def categorical(self) -> list[str]:
        return [name for name in self.columns if name not in self.numeric]

    def encode(self, reference: "TabularData | None" = None) -> np.ndarray:
        """``float32 (N, d)``: numeric columns standardised, categorical ones one-hot.

        Statistics and categories come from ``reference`` (e.g. the training split) so that train
        and test encode alike; unseen categories become all-zero rows.
        """
        ref = reference or self
        parts = []
        for name in self.columns:
            values = self.columns[name]
            if name in self.numeric:
                base = ref.columns[name]
                mean, std = np.nanmean(base), np.nanstd(base) or 1.0
                parts.append(np.nan_to_num((values - mean) / std)[:, None])
            else:
                categories = np.unique(ref.columns[name])
                parts.append((values[:, None] == categories[None, :]).astype(np.float32))
        return np.concatenate(parts, axis=1).astype(np.float32)


def _read_rows(path: Path, delimiter: str, expected: int, skip_comments: bool = False) -> list[list[str]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter=delimiter, skipinitialspace=True), 1):
            if not row or not "".join(row).strip() or (skip_comments and row[0].startswith("|")):
                continue
            if len(row) != expected:
                raise QuintetError(f"{path}:{line_no}: {len(row)} fields, expected {expected}")
            rows.append([cell.strip() for cell in row])
    return rows


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
]
ADULT_NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def _table(rows: list[list[str]], names: list[str], numeric: list[str], path: Path) -> dict[str, np.ndarray]:
    columns = {}
    for j, name in enumerate(names):
        cells = [row[j] for row in rows]
        if name in numeric:
            try:
                columns[name] = np.array([np.nan if c == "?" else float(c) for c in cells])
            except ValueError as exc:
                raise QuintetError(f"{path}: column {name!r} is not numeric ({exc})") from exc
        else:
            columns[name] = np.array(cells, dtype=str)
    return columns


def load_adult(split: str = "train", data_dir: str | os.PathLike | None = None) -> TabularData:
    """UCI Adult: 32561 train / 16281 test rows; label 1 = income >50K."""
    files = {"train": "uci/adult/adult.data", "test": "uci/adult/adult.test"}
    if split not in files:
        raise QuintetError(f"unknown Adult split {split!r}; expected train or test")
    path = require_file(files[split], data_dir)
    rows = _read_rows(path, ",", len(ADULT_COLUMNS) + 1, skip_comments=True)
    labels = np.array([row[-1].rstrip(".") == ">50K" for row in rows], dtype=np.int64)
    return TabularData(_table(rows, ADULT_COLUMNS, ADULT_NUMERIC, path), labels, ["<=50K", ">50K"], ADULT_NUMERIC)


def load_breast_cancer(data_dir: str | os.PathLike | None = None) -> TabularData:
    """UCI Breast Cancer (Ljubljana): 286 rows, 201 no-recurrence (0) / 85 recurrence (1)."""
    path = require_file("uci/breast-cancer/breast-cancer.csv", data_dir)
    with open(path, encoding="utf-8") as handle:
        header = [h.strip() for h in handle.readline().split(",")]
    rows = _read_rows(path, ",", len(header))[1:]
    names = ["no-recurrence-events", "recurrence-events"]
    label_col = header.index("event")
    unknown = {row[label_col] for row in rows} - set(names)
    if unknown:
        raise QuintetError(f"{path}: unknown event labels {sorted(unknown)}")
    labels = np.array([names.index(row[label_col]) for row in rows], dtype=np.int64)
    features = [h for h in header if h != "event"]
    feature_rows = [[c for j, c in enumerate(row) if j != label_col] for row in rows]
    return TabularData(_table(feature_rows, features, [], path), labels, names, [])


def load_monks(problem: int = 1, split: str = "train", data_dir: str | os.PathLike | None = None) -> TabularData:
    """MONK's problem 1, 2 or 3 (ARFF, class first): train 124/169/122 rows, test 432 each."""
    if problem not in (1, 2, 3) or split not in ("train", "test"):
        raise QuintetError(f"unknown MONK's problem {problem!r}/{split!r}; expected 1-3 and train/test")
    path = require_file(f"uci/monks/monks-{problem}.{split}.arff", data_dir)
    names: list[str] = []
    rows: list[list[str]] = []
    in_data = False
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("%"):
            continue
        lower = line.lower()
        if lower.startswith("@attribute"):
            names.append(line.split()[1])
        elif lower.startswith("@data"):
            in_data = True
        elif in_data:
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != len(names):
                raise QuintetError(f"{path}:{line_no}: {len(cells)} fields, expected {len(names)}")
            rows.append(cells)
    if not names or names[0] != "class":
        raise QuintetError(f"{path}: expected the first ARFF attribute to be 'class'")
    labels = np.array([int(row[0]) for row in rows], dtype=np.int64)
    return TabularData(_table([r[1:] for r in rows], names[1:], [], path), labels, ["0", "1"], [])
