"""Word-piece inputs for the text tasks: the authors of ratio DRO (Michel et al., ICLR 2022) feed
their BiLSTM BERT word pieces (bert-base-uncased, Devlin et al., 2019).

BERT's own vocabulary is not bundled, so :func:`train_wordpiece` learns an uncased WordPiece
vocabulary (Schuster & Nakajima, 2012) on the training sentences, with BERT's normaliser,
pre-tokeniser and greedy longest-match encoding from ``tokenizers`` and deterministic merges
(:func:`learn_pieces`), and caches it as JSON under ``$QUINTET_CACHE`` (else
``~/.cache/quintet``), keyed by a hash of the sentences and the settings. A Hugging Face tokenizer
folder (for instance a local copy of ``bert-base-uncased``) can be used instead
(:func:`load_local_tokenizer`). Either way id 0 is padding, as the models expect.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from quintet.core.errors import QuintetError

if TYPE_CHECKING:
    import torch

__all__ = ["TOKENS", "VOCAB_SIZE_RANGE", "BERT_VOCAB_SIZE", "PieceEncoder", "learn_pieces", "train_wordpiece",
           "load_local_tokenizer", "wordpiece_cache_dir", "check_vocab_size"]

#: the input units of a text task: whitespace words or word pieces
TOKENS = ("words", "wordpiece")
#: bert-base-uncased's vocabulary size, the default target
BERT_VOCAB_SIZE = 30522
VOCAB_SIZE_RANGE = (1000, 1_000_000)
PAD, UNK = "[PAD]", "[UNK]"
LEARNT = "learnt on the training split"
# bumped when the training settings below change, so that old cache files are not reused
_RECIPE = "bert-uncased-wordpiece-v1"


def wordpiece_cache_dir() -> Path:
    """``$QUINTET_CACHE`` (else ``~/.cache/quintet``)``/dro``: where trained vocabularies are kept."""
    return Path(os.environ.get("QUINTET_CACHE", "~/.cache/quintet")).expanduser() / "dro"


def check_vocab_size(vocab_size: int) -> int:
    """``vocab_size`` if it is an integer in ``VOCAB_SIZE_RANGE``, else a :class:`QuintetError`."""
    low, high = VOCAB_SIZE_RANGE
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not low <= vocab_size <= high:
        raise QuintetError(f"vocab_size must be an integer in [{low}, {high}], got {vocab_size!r}")
    return vocab_size


class PieceEncoder:
    """Sentences -> ``(N, T)`` int64 piece ids (0 = padding), ``T = min(max_len, longest)``.

    ``encode_batch(sentences) -> list[list[int]]`` gives the ids of a tokenizer without special
    tokens; ``shift`` is added to them and to ``unk_id`` (1 when the tokenizer's own padding id is
    not 0), and the unknown id stands for a sentence with no piece at all.
    """

    def __init__(self, encode_batch, vocab_size: int, unk_id: int, shift: int = 0, source: str = LEARNT):
        self._encode_batch = encode_batch
        self.vocab_size = vocab_size + shift
        self.unk_id = unk_id + shift
        self.shift = shift
        self.source = source

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, sentences: list[str], max_len: int = 128) -> torch.Tensor:
        from quintet.dro.tasks import pad_ids

        return pad_ids([[i + self.shift for i in ids] for ids in self._encode_batch(sentences)], max_len, self.unk_id)


def _bert_pipeline():
    """BERT's uncased normaliser and pre-tokeniser (``tokenizers``)."""
    from tokenizers import normalizers, pre_tokenizers

    return (normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True),
            pre_tokenizers.BertPreTokenizer())


def learn_pieces(word_counts: dict[str, int], vocab_size: int) -> list[str]:
    """WordPiece pieces by greedy pair merging (the criterion of ``tokenizers``' ``WordPieceTrainer``):
    words start as characters (non-initial ones marked ``##``); the most frequent adjacent pair is
    merged until ``vocab_size`` pieces (the special tokens and the whole alphabet always included)
    or until every word is one piece. Ties go to the alphabetically first pair, so the result
    depends on the counts only. Returns ``[PAD], [UNK]``, the alphabet (sorted), then the merges."""
    import heapq

    words = sorted(word_counts)
    counts = [word_counts[w] for w in words]
    symbols = [[w[0], *("##" + c for c in w[1:])] for w in words]
    pieces = [PAD, UNK, *sorted({s for word in symbols for s in word})]
    known = set(pieces)
    pair_count: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}

    def account(i: int, sign: int) -> set[tuple[str, str]]:
        pairs = set(zip(symbols[i], symbols[i][1:]))
        for pair in zip(symbols[i], symbols[i][1:]):
            pair_count[pair] = pair_count.get(pair, 0) + sign * counts[i]
        for pair in pairs:
            (where.setdefault(pair, set()).add if sign > 0 else where[pair].discard)(i)
        return pairs

    for i in range(len(words)):
        account(i, 1)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)
    while heap and len(pieces) < vocab_size:
        neg, a, b = heapq.heappop(heap)
        if pair_count.get((a, b), 0) != -neg or neg == 0:
            continue  # a stale entry: the pair's count changed since it was pushed
        merged = a + b[2:]
        if merged not in known:
            known.add(merged)
            pieces.append(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where[(a, b)]):
            changed |= account(i, -1)
            word, out, j = symbols[i], [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            symbols[i] = out
            changed |= account(i, 1)
        for pair in changed:
            if pair_count[pair] > 0:
                heapq.heappush(heap, (-pair_count[pair], *pair))
    return pieces


def _piece_encoder(tokenizer, source: str) -> PieceEncoder:
    def encode_batch(sentences: list[str]) -> list[list[int]]:
        return [e.ids for e in tokenizer.encode_batch(sentences, add_special_tokens=False)]

    return PieceEncoder(encode_batch, tokenizer.get_vocab_size(), tokenizer.token_to_id(UNK), source=source)


def train_wordpiece(sentences: list[str], vocab_size: int = BERT_VOCAB_SIZE,
                    cache_dir: str | os.PathLike | None = None) -> PieceEncoder:
    """An uncased WordPiece vocabulary of at most ``vocab_size`` pieces (fewer when the sentences
    give fewer) learnt on ``sentences`` (``[PAD]`` = 0, ``[UNK]`` = 1), read from / written to
    ``cache_dir`` (default :func:`wordpiece_cache_dir`) as ``wordpiece-<hash>.json``."""
    from tokenizers import Tokenizer, models

    from quintet.core.io import atomic_write_text

    check_vocab_size(vocab_size)
    if not sentences:
        raise QuintetError("train_wordpiece needs at least one training sentence, got none")
    digest = hashlib.sha256(json.dumps([_RECIPE, vocab_size, sentences]).encode()).hexdigest()[:20]
    path = Path(cache_dir or wordpiece_cache_dir()) / f"wordpiece-{digest}.json"
    if path.is_file():
        try:
            return _piece_encoder(Tokenizer.from_file(str(path)), LEARNT)
        except Exception:  # a damaged cache file (tokenizers raises its own error types) is rebuilt
            pass
    normalizer, pre_tokenizer = _bert_pipeline()
    word_counts = Counter(word for sentence in sentences
                          for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence)))
    pieces = learn_pieces(word_counts, vocab_size)
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token=UNK,
                                           continuing_subword_prefix="##"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    atomic_write_text(path, tokenizer.to_str())
    return _piece_encoder(tokenizer, LEARNT)


def load_local_tokenizer(path: str | os.PathLike) -> PieceEncoder:
    """A Hugging Face tokenizer folder (``AutoTokenizer.from_pretrained(path, local_files_only=True)``),
    e.g. a local copy of bert-base-uncased; its ids are used as they are (shifted by one when its
    padding id is not 0)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise QuintetError(f"tokenizer folder {folder} does not exist or is not a folder "
                           "(expected a Hugging Face tokenizer folder, e.g. a copy of bert-base-uncased)")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ... for a bad folder
        reason = " ".join(str(exc).split())[:200]
        raise QuintetError(f"{folder} is not a loadable Hugging Face tokenizer folder ({reason})") from None
    if tokenizer.unk_token_id is None:
        raise QuintetError(f"tokenizer {folder} has no unknown token; expected a WordPiece-style tokenizer with one")

    def encode_batch(sentences: list[str]) -> list[list[int]]:
        return tokenizer(sentences, add_special_tokens=False)["input_ids"]

    shift = 0 if tokenizer.pad_token_id == 0 else 1
    return PieceEncoder(encode_batch, len(tokenizer), tokenizer.unk_token_id, shift, source=str(folder))
