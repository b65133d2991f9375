"""Sentence classification files: GLUE SST-2 (TSV) and the sst-harvardnlp collection."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quintet.core.errors import QuintetError
from quintet.datasets.registry import require_file


@dataclass
class TextData:
    """Sentences with integer labels, ``labels: int64 (N,)``."""

    sentences: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sentences)


def read_label_tsv(path: Path) -> TextData:
    """A TSV with a header whose first column is an integer label and second the sentence."""
    sentences, labels = [], []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if len(header) != 2 or header[0] != "label":
            raise QuintetError(f"{path}: header {header} is not 'label<TAB>sentence'")
        for line_no, line in enumerate(handle, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[1]:
                raise QuintetError(f"{path}:{line_no}: expected 2 tab-separated fields (label, sentence), got {len(fields)}")
            try:
                labels.append(int(fields[0]))
            except ValueError as exc:
                raise QuintetError(f"{path}:{line_no}: label {fields[0]!r} is not an integer") from exc
            sentences.append(fields[1])
    return TextData(sentences, np.array(labels, dtype=np.int64))


def load_sst2(split: str = "train", data_dir: str | os.PathLike | None = None) -> TextData:
    """GLUE SST-2: train 67349 phrases, dev 872 and labelled test 1821 sentences; 1 = positive."""
    if split not in ("train", "dev", "test"):
        raise QuintetError(f"unknown SST-2 split {split!r}; expected train, dev or test")
    return read_label_tsv(require_file(f"sst2/{split}.tsv", data_dir))


# name -> (file pattern, splits); files are "<label> <sentence>" per line
HARVARD_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sst1": ("stsa.fine.{split}", ("train", "dev", "test")),
    "sst2": ("stsa.binary.{split}", ("train", "dev", "test")),
    "trec": ("TREC.{split}.all", ("train", "test")),
    "mr": ("rt-polarity.all", ()),
    "cr": ("custrev.all", ()),
    "subj": ("subj.all", ()),
    "mpqa": ("mpqa.all", ()),
}


def read_label_lines(path: Path) -> TextData:
    sentences, labels = [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        label, _, sentence = line.partition(" ")
        if not label.isdigit() or not sentence.strip():
            raise QuintetError(f"{path}:{line_no}: expected '<integer label> <sentence>'")
        labels.append(int(label))
        sentences.append(sentence.strip())
    return TextData(sentences, np.array(labels, dtype=np.int64))


def load_sst_harvard(name: str, split: str | None = None, data_dir: str | os.PathLike | None = None) -> TextData:
    """One of the sst-harvardnlp files: sst1, sst2, trec (with splits) or mr, cr, subj, mpqa."""
    if name not in HARVARD_FILES:
        raise QuintetError(f"unknown sentence data set {name!r}; expected one of: {', '.join(HARVARD_FILES)}")
    pattern, splits = HARVARD_FILES[name]
    if splits and split not in splits:
        raise QuintetError(f"{name} needs split in {splits}, got {split!r}")
    if not splits and split is not None:
        raise QuintetError(f"{name} has no splits (cross-validation data); pass split=None")
    return read_label_lines(require_file("sst-harvardnlp/" + pattern.format(split=split), data_dir))
