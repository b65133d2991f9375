"""Bad files give errors that name the file and the problem."""

from __future__ import annotations

import gzip
import shutil

import pytest

from quintet import datasets as ds
from quintet.core import QuintetError
from quintet.datasets import registry
from quintet.datasets.text import read_label_tsv


def _write_idx(path, magic: int, shape: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def test_idx_round_trip(tmp_path):
    _write_idx(tmp_path / "ok.gz", 0x0803, (2, 2, 3), bytes(range(12)))
    assert ds.read_idx(tmp_path / "ok.gz", 3).tolist() == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]


def test_wrong_idx_magic_names_file(tmp_path):
    _write_idx(tmp_path / "bad.gz", 0x0801, (2, 2, 3), bytes(12))
    with pytest.raises(QuintetError, match=r"bad\.gz: IDX magic number 0x00000801, expected 0x00000803"):
        ds.read_idx(tmp_path / "bad.gz", 3)


def test_truncated_gzip_names_file(tmp_path):
    _write_idx(tmp_path / "full.gz", 0x0803, (10, 28, 28), bytes(7840))
    data = (tmp_path / "full.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(QuintetError, match=r"cut\.gz: cannot decompress"):
        ds.read_idx(tmp_path / "cut.gz", 3)


def test_idx_size_disagreeing_with_header(tmp_path):
    _write_idx(tmp_path / "short.gz", 0x0803, (10, 28, 28), bytes(100))
    with pytest.raises(QuintetError, match=r"short\.gz: header says shape \(10, 28, 28\)"):
        ds.read_idx(tmp_path / "short.gz", 3)


def test_tsv_row_missing_field(tmp_path):
    (tmp_path / "dev.tsv").write_text("label\tsentence\n1\tfine\n0\n")
    with pytest.raises(QuintetError, match=r"dev\.tsv:3: expected 2 tab-separated fields"):
        read_label_tsv(tmp_path / "dev.tsv")


def test_json_that_is_not_a_sketch_document():
    with pytest.raises(QuintetError, match=r"doc\.json: feature 0 is not a sketch"):
        ds.parse_document(b'[{"name": "x"}]', "doc.json")
    with pytest.raises(QuintetError, match=r"doc\.json: expected a list of sketch features, got int"):
        ds.parse_document(b"3", "doc.json")
    with pytest.raises(QuintetError, match=r"doc\.json: not valid JSON"):
        ds.parse_document(b"{", "doc.json")


def test_checksum_mismatch_names_file(tmp_path, data_dir):
    (tmp_path / "uci" / "monks").mkdir(parents=True)
    original = data_dir / "uci" / "monks" / "monks-1.train.arff"
    copy = tmp_path / "uci" / "monks" / "monks-1.train.arff"
    shutil.copy(original, copy)
    assert len(ds.load_monks(1, "train", tmp_path)) == 124
    copy.write_text(original.read_text() + "0,1,1,1,1,1,1\n")  # one extra row
    with pytest.raises(QuintetError, match=r"checksum mismatch for .*monks-1\.train\.arff"):
        ds.load_monks(1, "train", tmp_path)


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(QuintetError, match=rf"'mnist/train-images-idx3-ubyte.gz' not found: looked for {tmp_path}"):
        ds.load_mnist("train", tmp_path)


def test_unknown_split():
    with pytest.raises(QuintetError, match="unknown SST-2 split 'validation'"):
        ds.load_sst2("validation")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("QUINTET_DATA", str(tmp_path / "env"))
    assert registry.data_root() == tmp_path / "env"
    assert registry.data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("QUINTET_DATA")
    monkeypatch.setattr(registry, "BESIDE_CLONE", tmp_path / "no-shared-data")
    assert registry.data_root().name == "quintet"


def test_json_records_names_the_line_that_is_not_an_object():
    from quintet.datasets.registry import json_records

    assert list(json_records(['{"a": 1}', "", '{"b": 2}'], "f.jsonl")) == [{"a": 1}, {"b": 2}]
    with pytest.raises(QuintetError, match=r"^f\.jsonl:2: expected a JSON object$"):
        list(json_records(['{"a": 1}', "[1, 2]"], "f.jsonl"))
    with pytest.raises(QuintetError, match=r"^f\.jsonl:1: not valid JSON"):
        list(json_records(["{oops"], "f.jsonl"))
