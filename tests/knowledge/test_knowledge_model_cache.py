"""The de-quantized model kept in the user cache: safetensors + JSON, read back exactly, tied
weights tied again, and an unreadable folder is one clear error."""

from __future__ import annotations

import json

import pytest
import torch
from knowledge_models import tiny_model, word_tokenizer

from quintet.core.errors import QuintetError
from quintet.knowledge.pretrained import (
    file_hash,
    load_dequantized,
    model_cache_dir,
    save_dequantized,
)


def test_saved_model_reads_back_with_identical_outputs_and_tied_weights(tmp_path):
    model, tok = tiny_model("llama", dtype=torch.float32), word_tokenizer()
    folder = save_dequantized(model, tok, tmp_path / "m")
    assert {"config.json", "model.safetensors", "tied.json"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "tied.json").read_text()) == {"lm_head.weight": "model.embed_tokens.weight"}
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in folder.iterdir())
    again, tok2 = load_dequantized(folder)
    ids = torch.tensor([tok("the capital of france is")["input_ids"]])
    assert ids.tolist() == [tok2("the capital of france is")["input_ids"]]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert again.lm_head.weight.data_ptr() == again.model.embed_tokens.weight.data_ptr()
    assert not list(tmp_path.glob(".m-*"))          # the temporary folder is gone


def test_cache_folder_is_keyed_by_the_file_content(tmp_path, monkeypatch):
    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"one"), b.write_bytes(b"two")
    assert file_hash(a) == "7692c3ad3540bb80"          # sha256(b"one"), first 16 hex digits
    assert model_cache_dir("x", a).parent == tmp_path / "cache" / "models"
    assert model_cache_dir("x", a) != model_cache_dir("x", b)
    b.write_bytes(b"one")
    assert model_cache_dir("x", a) == model_cache_dir("x", b)


def test_damaged_cache_folder_is_one_clear_error(tmp_path):
    model, tok = tiny_model("llama", dtype=torch.float32), word_tokenizer()
    folder = save_dequantized(model, tok, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(QuintetError, match="not a valid safetensors file"):
        load_dequantized(folder)
