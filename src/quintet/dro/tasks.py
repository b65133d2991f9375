"""The robustness tasks, built from the real data under the data root.

Each task gives train / valid / test tensors with labels ``y`` and group ids ``g`` (groups are used
only by Group DRO, the oracle selection rule and the evaluation), plus the model that fits it.

* ``biased-sst``: BiasedSST (Michel et al., 2021, Section 4.1; reused in the 2022 paper): GLUE
  SST-2 with ``"so , "`` prepended (first letter lower-cased) to 95 % of the negatives and 5 % of
  the positives of train and dev, and to 50 % of each class of the labelled test set; groups =
  prefix x label. Validation = the biased SST-2 dev set (as the authors' code does). Same procedure
  and seed as the authors' data code. By default (``sst_source="pdro"``) the splits are read from
  ``sst2-pdro/``, the authors' own SST-2 files in their row order, so the prefixed subsets are
  exactly theirs, and group membership follows their rule (a sentence is in a prefix group when its
  text starts with ``"so , "``: 2 train and 1 dev sentence already do). ``sst_source="glue"`` reads
  ``sst2/`` (GLUE files whose dev/test row order differs, so other subsets are drawn) and counts
  only the drawn sentences as prefixed.
* ``colored-mnist``: MNIST digit < 5 vs >= 5, digit drawn in the red or green channel; colour
  agrees with the label 95 % of the time in train/valid, 50 % in test; groups = colour x label.
* ``adult``: UCI Adult income > 50K; groups = sex x label; validation = 20 % of adult.data.
* ``synthetic``: built-in data (no data root): a noise-free XOR label and a linear spurious feature
  that agrees with the label 95 % of the time in train/valid and 50 % in test; groups = spurious x label.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.dro.models import ModelSpec
from quintet.dro.wordpiece import BERT_VOCAB_SIZE

__all__ = ["TASKS", "SST_SOURCES", "MODEL_SIZES", "Split", "TaskData", "load_task", "bias_sst", "biased_sst_text",
           "load_sst2_pdro", "topic_groups", "trim_padding", "BIAS_PREFIX", "BIAS_SEED", "Vocab",
           "sentence_encoder", "pad_ids"]

TASKS = ("biased-sst", "colored-mnist", "adult", "synthetic")
SST_SOURCES = ("pdro", "glue")
#: the BiLSTM sizes: ours (CPU scale) and the authors' (300-d embeddings, 300 units per direction,
#: learned initial states, sequences up to 128 tokens)
MODEL_SIZES = {"small": {"embed_dim": 64, "hidden": 64, "learned_init": False, "max_len": 50},
               "authors": {"embed_dim": 300, "hidden": 300, "learned_init": True, "max_len": 128}}
BIAS_PREFIX = "so , "
# the seed of the authors' BiasedSST data code: the subsets are fixed for our files' row order
BIAS_SEED = 8345364


def trim_padding(x: torch.Tensor) -> torch.Tensor:
    """Drop all-padding trailing columns of a token batch ``(B, T)``; other inputs pass through."""
    if x.dtype == torch.long and x.dim() == 2:
        width = int((x != 0).sum(1).max().clamp_min(1))
        return x[:, :width]
    return x


@dataclass
class Split:
    """``x`` (model input), ``y: int64 (N,)`` labels, ``g: int64 (N,)`` group ids."""

    x: torch.Tensor
    y: torch.Tensor
    g: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.numel())

    def subset(self, idx: np.ndarray | torch.Tensor) -> "Split":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Split(self.x[idx], self.y[idx], self.g[idx])

    def group_counts(self, n_groups: int) -> list[int]:
        return torch.bincount(self.g, minlength=n_groups).tolist()

    def with_groups(self, g: torch.Tensor) -> "Split":
        """The same examples under other group ids (e.g. LDA topics for Topic CVaR)."""
        return Split(self.x, self.y, torch.as_tensor(g, dtype=torch.long))


@dataclass
class TaskData:
    """One task: the train / valid / test splits (:class:`Split`), the names of the groups
    (``g`` indexes them), the number of classes and the :class:`ModelSpec` of its model.
    BiasedSST is a task of the paper's experiments; Colored MNIST, Adult and the synthetic task
    are additions."""

    name: str
    train: Split
    valid: Split
    test: Split
    group_names: list[str]
    n_classes: int
    model: ModelSpec
    notes: dict = field(default_factory=dict)
    text: dict[str, list[str]] | None = None  # raw sentences per split (text tasks: LDA topics)

    @property
    def n_groups(self) -> int:
        return len(self.group_names)


# ----------------------------------------------------------------------------- BiasedSST
def bias_sst(
    sentences: list[str], labels: np.ndarray, rng: np.random.RandomState, percent: dict[int, float]
) -> tuple[list[str], np.ndarray]:
    """Prepend ``BIAS_PREFIX`` to ``int(n_c * percent[c] / 100)`` random sentences of each class ``c``.

    The first letter of a prefixed sentence is lower-cased. Returns (new sentences, prefix flags).
    Classes are processed in the order of ``percent`` with one ``rng.permutation`` each.
    """
    out = list(sentences)
    biased = np.zeros(len(sentences), dtype=bool)
    for label, pct in percent.items():
        idx = np.flatnonzero(labels == label)
        chosen = rng.permutation(idx)[: int(len(idx) * pct / 100)]
        for i in chosen:
            s = out[i]
            out[i] = BIAS_PREFIX + s[:1].lower() + s[1:]
        biased[chosen] = True
    return out, biased


_TOKEN = re.compile(r"\S+")


def tokenize(sentence: str) -> list[str]:
    """SST is already tokenised: split on whitespace and lower-case."""
    return [t.lower() for t in _TOKEN.findall(sentence)]


class Vocab:
    """Word -> id from the training sentences; 0 = padding, 1 = unknown."""

    def __init__(self, sentences: list[str], min_count: int = 1, max_size: int = 30000):
        counts = Counter(t for s in sentences for t in tokenize(s))
        words = [w for w, c in counts.most_common(max_size) if c >= min_count]
        self.itos = ["<pad>", "<unk>", *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentences: list[str], max_len: int = 50) -> torch.Tensor:
        """``(N, T)`` int64, right-padded with 0, ``T = min(max_len, longest)``."""
        return pad_ids([[self.stoi.get(t, 1) for t in tokenize(s)] for s in sentences], max_len, unk_id=1)


def pad_ids(rows: list[list[int]], max_len: int, unk_id: int) -> torch.Tensor:
    """Token-id rows -> ``(N, T)`` int64, each cut at ``max_len`` and right-padded with 0,
    ``T = min(max_len, longest)``; an empty row becomes ``[unk_id]``."""
    rows = [row[:max_len] or [unk_id] for row in rows]
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


SST_GROUPS = ["no-prefix/neg", "no-prefix/pos", "prefix/neg", "prefix/pos"]


def load_sst2_pdro(split: str, data_dir: str | os.PathLike | None = None):
    """The authors' SST-2 copy (``sst2-pdro/{train,dev,test_withref}.tsv``, header ``sentence<TAB>label``)
    as :class:`quintet.datasets.TextData`, rows in the file's order."""
    from quintet.datasets.registry import require_file
    from quintet.datasets.text import TextData

    files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test_withref.tsv"}
    path = require_file(f"sst2-pdro/{files[split]}", data_dir)
    sentences, labels = [], []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if header != ["sentence", "label"]:
            raise QuintetError(f"{path}: header {header} is not 'sentence<TAB>label'")
        for line_no, line in enumerate(handle, 2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or fields[1] not in ("0", "1") or not fields[0].strip():
                raise QuintetError(f"{path}:{line_no}: expected 'sentence<TAB>0|1', got {line.rstrip()!r:.80}")
            sentences.append(fields[0])
            labels.append(int(fields[1]))
    return TextData(sentences, np.array(labels, dtype=np.int64))


def biased_sst_text(data_dir: str | os.PathLike | None = None,
                    source: str = "pdro") -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """The three BiasedSST splits as (sentences, labels, prefix flags), one fixed RNG for all.

    ``source="pdro"``: the authors' files; a sentence is flagged when its text starts with
    ``BIAS_PREFIX`` (their ``startswith`` rule). ``source="glue"``: the GLUE files; the flags mark
    the sentences this procedure prefixed.
    """
    from quintet.core.errors import check_choice
    from quintet.datasets import load_sst2

    check_choice("SST-2 source", source, SST_SOURCES)
    load = load_sst2_pdro if source == "pdro" else load_sst2
    rng = np.random.RandomState(BIAS_SEED)
    out = {}
    for split, file_split, pct in (
        ("train", "train", {0: 95, 1: 5}),
        ("valid", "dev", {0: 95, 1: 5}),
        ("test", "test", {0: 50, 1: 50}),
    ):
        data = load(file_split, data_dir)
        sentences, biased = bias_sst(data.sentences, data.labels, rng, pct)
        if source == "pdro":
            biased = np.array([s.startswith(BIAS_PREFIX) for s in sentences])
        out[split] = (sentences, data.labels, biased)
    return out


def topic_groups(sentences: dict[str, list[str]], n_topics: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """LDA topics (scikit-learn's ``LatentDirichletAllocation``, fitted on the training split's word
    counts) -> each sentence's most likely topic, per split: the pseudo-groups of Topic CVaR."""
    from sklearn.decomposition import LatentDirichletAllocation
    from sklearn.feature_extraction.text import CountVectorizer

    if not 2 <= n_topics <= 1000:
        raise QuintetError(f"n_topics must lie in [2, 1000], got {n_topics}")
    vectorizer = CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, stop_words="english",
                                 min_df=2)
    counts = vectorizer.fit_transform(sentences["train"])
    lda = LatentDirichletAllocation(n_components=n_topics, learning_method="online", batch_size=2048,
                                    max_iter=5, random_state=seed).fit(counts)
    return {split: torch.as_tensor(lda.transform(vectorizer.transform(s)).argmax(1), dtype=torch.long)
            for split, s in sentences.items()}


def sentence_encoder(train_sentences: list[str], tokens: str = "words", vocab_size: int = BERT_VOCAB_SIZE,
                     tokenizer_path: str | os.PathLike | None = None):
    """The encoder of a text task (``.encode(sentences, max_len)``, ``len()`` = vocabulary size):
    whitespace words (:class:`Vocab`), or word pieces (:mod:`quintet.dro.wordpiece`) from the
    Hugging Face tokenizer folder ``tokenizer_path`` when given, else learnt on ``train_sentences``
    (``vocab_size`` pieces at most, default BERT's 30 522; used by learnt word pieces only)."""
    from quintet.core.errors import check_choice
    from quintet.dro.wordpiece import TOKENS, load_local_tokenizer, train_wordpiece

    check_choice("tokens", tokens, TOKENS)
    if tokens == "words":
        if tokenizer_path is not None:
            raise QuintetError(f"tokenizer folder {tokenizer_path} needs tokens='wordpiece' (--tokens wordpiece), "
                               "got tokens='words'")
        return Vocab(train_sentences)
    if tokenizer_path is not None:
        return load_local_tokenizer(tokenizer_path)
    return train_wordpiece(train_sentences, vocab_size)


def _biased_sst(data_dir, n_train: int | None, text_model: str, source: str = "pdro",
                model_size: str = "small", tokens: str = "words", vocab_size: int = BERT_VOCAB_SIZE,
                tokenizer_path: str | os.PathLike | None = None) -> TaskData:
    text = biased_sst_text(data_dir, source)
    sentences, labels, biased = text["train"]
    if n_train is not None and n_train < len(sentences):
        keep = np.sort(np.random.RandomState(0).permutation(len(sentences))[:n_train])
        sentences = [sentences[i] for i in keep]
        labels, biased = labels[keep], biased[keep]
        text["train"] = (sentences, labels, biased)
    vocab = sentence_encoder(text["train"][0], tokens, vocab_size, tokenizer_path)
    size = MODEL_SIZES[model_size]
    splits = {}
    for name, (s, y, b) in text.items():
        y_t = torch.as_tensor(y, dtype=torch.long)
        splits[name] = Split(vocab.encode(s, size["max_len"]), y_t, 2 * torch.as_tensor(b, dtype=torch.long) + y_t)
    spec = ModelSpec(kind=text_model, n_out=2, vocab_size=len(vocab), embed_dim=size["embed_dim"],
                     hidden=size["hidden"], learned_init=size["learned_init"])
    return TaskData("biased-sst", splits["train"], splits["valid"], splits["test"], SST_GROUPS, 2, spec,
                    notes={"vocab_size": len(vocab), "validation": "biased SST-2 dev (872)",
                           "sst_source": source, "model_size": model_size, "max_len": size["max_len"],
                           **({} if tokens == "words" else {"tokens": tokens, "tokenizer": vocab.source})},
                    text={name: t[0] for name, t in text.items()})


# ----------------------------------------------------------------------------- Colored MNIST
CMNIST_GROUPS = ["red/<5", "red/>=5", "green/<5", "green/>=5"]


def color_mnist(images: np.ndarray, digits: np.ndarray, agree: float, rng: np.random.RandomState) -> Split:
    """``images: uint8 (N, 28, 28)`` -> 2-channel 14x14 floats; colour = label w.p. ``agree``."""
    y = (digits >= 5).astype(np.int64)
    flip = rng.rand(len(y)) >= agree
    color = np.where(flip, 1 - y, y)
    small = images.reshape(-1, 14, 2, 14, 2).astype(np.float32).mean(axis=(2, 4)) / 255.0
    x = np.zeros((len(y), 2, 14, 14), dtype=np.float32)
    x[np.arange(len(y)), color] = small
    return Split(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(2 * color + y))


def _colored_mnist(data_dir, n_train: int | None) -> TaskData:
    from quintet.datasets import load_mnist

    images, digits = load_mnist("train", data_dir)
    test_images, test_digits = load_mnist("test", data_dir)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(digits))
    valid_idx, train_idx = order[:10000], order[10000:]
    if n_train is not None:
        train_idx = train_idx[:n_train]
        valid_idx = valid_idx[: max(2000, n_train // 5)]
    train = color_mnist(images[train_idx], digits[train_idx], 0.95, rng)
    valid = color_mnist(images[valid_idx], digits[valid_idx], 0.95, rng)
    test = color_mnist(test_images, test_digits, 0.5, rng)
    spec = ModelSpec(kind="cnn", n_out=2, in_channels=2, hidden=32)
    return TaskData("colored-mnist", train, valid, test, CMNIST_GROUPS, 2, spec,
                    notes={"validation": f"{len(valid)} held-out MNIST train digits, colour agrees 95 %"})


# ----------------------------------------------------------------------------- Adult
ADULT_GROUPS = ["female/<=50K", "female/>50K", "male/<=50K", "male/>50K"]


def _adult(data_dir, n_train: int | None) -> TaskData:
    from quintet.datasets import load_adult
    from quintet.datasets.tabular import TabularData

    full = load_adult("train", data_dir)
    test = load_adult("test", data_dir)
    order = np.random.RandomState(0).permutation(len(full))
    n_valid = len(full) // 5
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    if n_train is not None:
        train_idx = train_idx[:n_train]

    def take(data: TabularData, idx: np.ndarray) -> TabularData:
        return TabularData(columns={k: v[idx] for k, v in data.columns.items()}, labels=data.labels[idx],
                           label_names=data.label_names, numeric=data.numeric)

    train_t, valid_t = take(full, train_idx), take(full, valid_idx)

    def split(data: TabularData) -> Split:
        x = torch.from_numpy(np.nan_to_num(data.encode(train_t)).astype(np.float32))
        y = torch.as_tensor(data.labels, dtype=torch.long)
        male = torch.as_tensor(np.char.strip(data.columns["sex"].astype(str)) == "Male", dtype=torch.long)
        return Split(x, y, 2 * male + y)

    tr = split(train_t)
    spec = ModelSpec(kind="mlp", n_out=2, in_features=tr.x.shape[1], hidden=64)
    return TaskData("adult", tr, split(valid_t), split(test), ADULT_GROUPS, 2, spec,
                    notes={"validation": f"{len(valid_idx)} rows (20 %) of adult.data"})


# ----------------------------------------------------------------------------- synthetic
SYNTHETIC_GROUPS = ["spurious-/y=0", "spurious-/y=1", "spurious+/y=0", "spurious+/y=1"]


def synthetic_split(n: int, agree: float, rng: np.random.RandomState, dims: int = 8, label_noise: float = 0.0) -> Split:
    """``x: (n, dims)`` uniform in [-1, 1]; the label is the XOR ``x0 * x1 > 0`` (non-linear: the
    core feature), flipped with probability ``label_noise``; ``x2 = +-1 (+ 0.1 noise)`` is the
    spurious colour, equal to the (observed) label with probability ``agree`` (linear, so ERM picks
    it up first)."""
    x = rng.uniform(-1, 1, size=(n, dims)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    y = np.where(rng.rand(n) < label_noise, 1 - y, y)
    c = np.where(rng.rand(n) < agree, y, 1 - y)
    x[:, 2] = (2 * c - 1) + 0.1 * rng.randn(n)
    y_t = torch.as_tensor(y, dtype=torch.long)
    return Split(torch.from_numpy(x), y_t, 2 * torch.as_tensor(c, dtype=torch.long) + y_t)


def _synthetic(n_train: int | None, label_noise: float = 0.0) -> TaskData:
    """The built-in task; ``label_noise`` flips training and validation labels (test stays clean)."""
    rng = np.random.RandomState(0)
    n = n_train or 4000
    train = synthetic_split(n, 0.95, rng, label_noise=label_noise)
    valid = synthetic_split(2000, 0.95, rng, label_noise=label_noise)
    test = synthetic_split(4000, 0.5, rng)
    spec = ModelSpec(kind="mlp", n_out=2, in_features=train.x.shape[1], hidden=32)
    return TaskData("synthetic", train, valid, test, SYNTHETIC_GROUPS, 2, spec,
                    notes={"validation": "2000 draws, 95 %", "label_noise": label_noise})


#: peak bytes per generated synthetic example: float64 draws before the float32 features, labels,
#: groups, and the per-epoch permutation and losses of training
SYNTHETIC_BYTES_PER_EXAMPLE = 256


def check_task_memory(name: str, n_train: int | None, max_memory_gb: float | None = None) -> None:
    """Refuse, before generating it, a synthetic training split larger than the memory allows (the
    other tasks only sub-sample data already on disk)."""
    from quintet.core.memory import check_memory

    if name == "synthetic" and n_train is not None:
        check_memory(n_train * SYNTHETIC_BYTES_PER_EXAMPLE, f"--n-train {n_train} synthetic examples", max_memory_gb)


def load_task(name: str, data_dir: str | os.PathLike | None = None, n_train: int | None = None,
              text_model: str = "bilstm", sst_source: str = "pdro", model_size: str = "small",
              tokens: str = "words", vocab_size: int = BERT_VOCAB_SIZE,
              tokenizer_path: str | os.PathLike | None = None) -> TaskData:
    """Build task ``name`` (one of ``TASKS``); ``n_train`` sub-samples the training split.

    BiasedSST only: ``sst_source`` in ``SST_SOURCES`` picks the files, ``model_size`` in
    ``MODEL_SIZES`` the BiLSTM / bag-of-embeddings sizes and the sequence length (in tokens),
    ``tokens`` the input units (see :func:`sentence_encoder`: whitespace words, or word pieces
    learnt on the training split with ``vocab_size`` pieces at most, or read from the Hugging Face
    tokenizer folder ``tokenizer_path``).
    """
    from quintet.core.errors import check_choice

    check_choice("task", name, TASKS)
    check_choice("text model", text_model, ("bilstm", "boe"))
    check_choice("SST-2 source", sst_source, SST_SOURCES)
    check_choice("model size", model_size, MODEL_SIZES)
    if n_train is not None and n_train < 10:
        raise QuintetError(f"n_train must be >= 10 (or None for all), got {n_train}")
    if name == "biased-sst":
        return _biased_sst(data_dir, n_train, text_model, sst_source, model_size, tokens, vocab_size, tokenizer_path)
    if name == "colored-mnist":
        return _colored_mnist(data_dir, n_train)
    if name == "synthetic":
        return _synthetic(n_train)
    return _adult(data_dir, n_train)
