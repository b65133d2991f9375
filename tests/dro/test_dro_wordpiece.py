"""Word-piece inputs for BiasedSST: the learnt vocabulary (deterministic, cached, uncased), a local
Hugging Face tokenizer folder, the task built on them, and the configuration of old runs."""

from __future__ import annotations

import json
import tempfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.dro import TrainConfig, load_task, train_on
from quintet.dro.tasks import sentence_encoder
from quintet.dro.wordpiece import learn_pieces, load_local_tokenizer, train_wordpiece

SENTENCES = ["the cat sat on the mat .", "a tact act , the cat sat", "cats act on a mat", "the act is a tact"] * 3


def _pieces(cache_dir, sentence: str) -> list[str]:
    """The pieces of ``sentence`` under the one vocabulary cached in ``cache_dir``."""
    from tokenizers import Tokenizer

    (path,) = cache_dir.glob("wordpiece-*.json")
    return Tokenizer.from_file(str(path)).encode(sentence, add_special_tokens=False).tokens


def test_learn_pieces_merges_the_most_frequent_pair_first():
    # pairs: (a, ##b) 3 + 1 = 4 times, (##b, ##c) once -> "ab" first, then "abc"
    assert learn_pieces({"ab": 3, "abc": 1}, 100) == ["[PAD]", "[UNK]", "##b", "##c", "a", "ab", "abc"]
    # a tie between (a, ##b) and (c, ##d) goes to the alphabetically first pair; the size caps the merges
    assert learn_pieces({"cd": 1, "ab": 1}, 7) == ["[PAD]", "[UNK]", "##b", "##d", "a", "c", "ab"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text("abcde", min_size=1, max_size=8), min_size=1, max_size=12),
       st.integers(1000, 1010))
def test_every_training_word_splits_into_its_own_letters(words, vocab_size):
    pieces = learn_pieces({w: i + 1 for i, w in enumerate(words)}, vocab_size)
    assert pieces[:2] == ["[PAD]", "[UNK]"] and len(set(pieces)) == len(pieces)
    with tempfile.TemporaryDirectory() as cache:
        encoder = train_wordpiece([" ".join(words)], vocab_size, cache)
        ids = encoder.encode(words, max_len=20)
        assert 1 not in ids.tolist() and ids.shape[0] == len(words)  # no unknown piece for a training word
        assert set(words) <= set(pieces)  # below the size cap, every training word ends up one piece
        assert ids[:, 1:].eq(0).all()


def test_learnt_vocabulary_is_deterministic_and_uncased(tmp_path):
    first = train_wordpiece(SENTENCES, 1000, tmp_path / "one")
    second = train_wordpiece(SENTENCES, 1000, tmp_path / "two")  # trained again, not read from the cache
    probe = ["The CAT sat on a Mat", "tactcat", "act on the cats ."]
    assert torch.equal(first.encode(probe), second.encode(probe))
    assert len(first) == len(second)
    assert torch.equal(first.encode(["The CAT"]), first.encode(["the cat"]))
    assert first.encode([""]).tolist() == [[1]]  # no piece: one unknown token


def test_unseen_word_splits_into_known_pieces(tmp_path):
    encoder = train_wordpiece(SENTENCES, 1000, tmp_path)
    ids = encoder.encode(["cattact"])[0]
    assert "cattact" not in " ".join(SENTENCES).split()
    assert len(ids) > 1 and 1 not in ids.tolist()  # several known pieces, no [UNK]
    pieces = _pieces(tmp_path, "cattact")
    assert "".join(p.removeprefix("##") for p in pieces) == "cattact" and pieces[1].startswith("##")
    assert 1 in encoder.encode(["zebra"])[0].tolist()  # letters never seen: unknown


def test_cache_is_reused_and_keyed_by_the_sentences(tmp_path, monkeypatch):
    encoder = train_wordpiece(SENTENCES, 1000, tmp_path)
    files = sorted(tmp_path.glob("wordpiece-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["model"]["type"] == "WordPiece"

    def no_training(*args, **kwargs):
        raise AssertionError("the cached vocabulary should have been read")

    monkeypatch.setattr("quintet.dro.wordpiece.learn_pieces", no_training)
    cached = train_wordpiece(SENTENCES, 1000, tmp_path)
    assert torch.equal(cached.encode(SENTENCES), encoder.encode(SENTENCES))
    monkeypatch.undo()
    train_wordpiece(SENTENCES[:2], 1000, tmp_path)  # other sentences -> another file
    train_wordpiece(SENTENCES, 1001, tmp_path)  # another size -> another file
    assert len(list(tmp_path.glob("wordpiece-*.json"))) == 3
    files[0].write_text("{not json")  # a damaged cache file is rebuilt
    assert torch.equal(train_wordpiece(SENTENCES, 1000, tmp_path).encode(SENTENCES), encoder.encode(SENTENCES))


def test_vocabulary_size_caps_the_pieces_and_truncation(tmp_path):
    big = train_wordpiece(SENTENCES, 30522, tmp_path)
    alphabet = len(learn_pieces({w: 1 for w in " ".join(SENTENCES).split()}, 1)) - 2
    assert len(big) < 30522  # capped by what the sentences give
    with pytest.raises(QuintetError, match=r"vocab_size must be an integer in \[1000, 1000000\], got 5"):
        train_wordpiece(SENTENCES, 5, tmp_path)
    assert alphabet + 2 <= len(big)
    x = big.encode(["the cat sat on the mat . " * 10, "cat"], max_len=7)
    assert x.shape == (2, 7) and x[1, 1:].eq(0).all() and x[0].ne(0).all()


def _tiny_tokenizer_folder(path, pad_first: bool = True):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["the", "cat", "sat", "##s", "on", "mat", "."]
    specials = ["[PAD]", "[UNK]"] if pad_first else ["[UNK]", "[PAD]"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate([*specials, *words])}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(path)
    return path


def test_local_tokenizer_folder_is_used(tmp_path):
    folder = _tiny_tokenizer_folder(tmp_path / "tok")
    encoder = sentence_encoder(["ignored training text"], "wordpiece", tokenizer_path=folder)
    assert len(encoder) == 9
    assert encoder.encode(["The cats sat", "dog"]).tolist() == [[2, 3, 5, 4], [1, 0, 0, 0]]
    # a tokenizer whose padding id is not 0: every id moves up by one, 0 stays padding
    shifted = load_local_tokenizer(_tiny_tokenizer_folder(tmp_path / "tok2", pad_first=False))
    assert len(shifted) == 10 and shifted.encode(["the cat", "dog"]).tolist() == [[3, 4], [1, 0]]
    with pytest.raises(QuintetError, match="is not a loadable Hugging Face tokenizer folder"):
        load_local_tokenizer(tmp_path)  # a folder without tokenizer files
    with pytest.raises(QuintetError, match="does not exist"):
        load_local_tokenizer(tmp_path / "missing")
    with pytest.raises(QuintetError, match="needs tokens='wordpiece'"):
        sentence_encoder(["a"], "words", tokenizer_path=folder)


def test_biased_sst_on_word_pieces_keeps_labels_and_groups(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path))
    words = load_task("biased-sst", data_dir, n_train=2000, text_model="boe")
    pieces = load_task("biased-sst", data_dir, n_train=2000, text_model="boe", tokens="wordpiece")
    for split in ("train", "valid", "test"):
        a, b = getattr(words, split), getattr(pieces, split)
        assert torch.equal(a.y, b.y) and torch.equal(a.g, b.g)
        assert b.x.shape[1] <= 50 and int(b.x.max()) < pieces.model.vocab_size
    assert pieces.notes["tokens"] == "wordpiece" and "tokens" not in words.notes
    assert pieces.model.vocab_size == pieces.notes["vocab_size"] > words.notes["vocab_size"]
    long = load_task("biased-sst", data_dir, n_train=2000, text_model="boe", tokens="wordpiece", model_size="authors")
    assert pieces.train.x.shape[1] == 50 < long.train.x.shape[1] <= 128  # truncated at each size's max_len
    assert len(list(tmp_path.glob("dro/wordpiece-*.json"))) == 1  # both sizes share the vocabulary


def test_words_configuration_is_unchanged_and_old_checkpoints_resume(tmp_path):
    cfg = TrainConfig(task="synthetic", method="erm", epochs=1, n_train=200)
    assert not {"tokens", "vocab_size", "tokenizer_path"} & set(cfg.recorded())
    data = load_task("synthetic", n_train=200)
    train_on(data, cfg, tmp_path)
    saved = json.loads(next(tmp_path.glob("checkpoint-*/config.json")).read_text())
    assert "tokens" not in saved  # what runs made before the word-piece fields recorded
    resumed = train_on(data, TrainConfig(task="synthetic", method="erm", epochs=2, n_train=200), tmp_path)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    pieces = TrainConfig(tokens="wordpiece", vocab_size=5000).recorded()
    assert (pieces["tokens"], pieces["vocab_size"], pieces["tokenizer_path"]) == ("wordpiece", 5000, None)
    assert "vocab_size" not in TrainConfig(tokens="wordpiece", tokenizer_path="bert").recorded()


@pytest.mark.parametrize("kwargs, match", [
    ({"tokens": "chars"}, "tokens"),
    ({"tokens": "wordpiece", "vocab_size": 999}, "vocab_size must be an integer"),
    ({"tokenizer_path": "bert"}, "needs tokens='wordpiece'"),
    ({"task": "adult", "tokens": "wordpiece"}, "applies to the text task"),
])
def test_config_refuses_bad_token_settings(kwargs, match):
    with pytest.raises(QuintetError, match=match):
        TrainConfig(**kwargs).validate()


@pytest.mark.parametrize("extra, message", [
    (["--tokens", "wordpiece", "--tokenizer", "MISSING"], "does not exist"),
    (["--tokens", "wordpiece", "--vocab-size", "10"], "greater than or equal to 1000"),
    (["--vocab-size", "5000"], "applies to learnt word pieces only"),
    (["--tokens", "chars"], "chars"),
])
def test_cli_refuses_bad_token_options(tmp_path, capsys, extra, message):
    extra = [str(tmp_path / "missing") if e == "MISSING" else e for e in extra]
    assert main(["dro", "train", "--task", "biased-sst", "--epochs", "1", "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_folder_that_is_no_tokenizer(data_dir, tmp_path, capsys):
    assert main(["dro", "train", "--tokens", "wordpiece", "--tokenizer", str(tmp_path), "--n-train", "50",
                 "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not a loadable Hugging Face tokenizer folder" in err and len(err.strip().splitlines()) == 1
