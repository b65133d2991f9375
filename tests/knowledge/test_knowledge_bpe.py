"""RoBERTa and GPT-2 with a real byte-level BPE tokenizer (trained here with `tokenizers`): the
``<mask>`` token, space-prefixed answers (``Ġparis``), and the attribution on top of them."""

from __future__ import annotations

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.knowledge import integrated_gradients
from quintet.knowledge.prompts import encode

CORPUS = ["the capital of france is paris .", "the capital of italy is rome .", "paris is the capital of france .",
          "rome is the capital of italy .", "the language of france is french ."] * 3


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder = tmp_path_factory.mktemp("bpe")
    bpe.save_model(str(folder))
    return str(folder / "vocab.json"), str(folder / "merges.txt")


def _roberta(bpe_files):
    import transformers as tf
    from tokenizers import AddedToken

    # roberta-base's tokenizer.json marks <mask> lstrip, so " <mask>" is one token, not "Ġ" + <mask>
    tok = tf.RobertaTokenizerFast(*bpe_files, mask_token=AddedToken("<mask>", lstrip=True, rstrip=False))
    torch.manual_seed(0)
    config = tf.RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=24, max_position_embeddings=40, pad_token_id=tok.pad_token_id,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_range=0.5)
    return tf.RobertaForMaskedLM(config).double().eval(), tok


def _gpt2(bpe_files):
    import transformers as tf

    tok = tf.GPT2TokenizerFast(*bpe_files, pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=40, initializer_range=0.5,
                           bos_token_id=tok.convert_tokens_to_ids("<s>"), eos_token_id=tok.convert_tokens_to_ids("</s>"))
    return tf.GPT2LMHeadModel(config).double().eval(), tok


CASES = {
    "roberta": (_roberta, "the capital of france is [MASK] .",
                ["<s>", "the", "Ġcapital", "Ġof", "Ġfrance", "Ġis", "<mask>", "Ġ.", "</s>"], 6),
    "gpt2": (_gpt2, "the capital of france is", ["the", "Ġcapital", "Ġof", "Ġfrance", "Ġis"], 4),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bpe_mask_space_prefixed_answer_and_attribution(kind, bpe_files):
    build, prompt, tokens, position = CASES[kind]
    model, tok = build(bpe_files)
    batch = encode(tok, [prompt], ["paris"], causal=kind == "gpt2")
    assert tok.convert_ids_to_tokens(batch.inputs["input_ids"][0]) == tokens
    assert int(batch.positions[0]) == position
    # both "paris" (sentence start) and "Ġparis" are in the vocabulary; after a word it is "Ġparis"
    assert tok.convert_tokens_to_ids("paris") != tok.unk_token_id
    assert tok.convert_ids_to_tokens([int(batch.targets[0])]) == ["Ġparis"]
    with torch.no_grad():
        logits = model(**batch.inputs).logits[0, position]
    expected = float(logits.softmax(-1)[tok.convert_tokens_to_ids("Ġparis")])
    attr = integrated_gradients(model, tok, prompt, "paris", steps=20, rule="gauss", with_baseline=True)
    assert attr.prob == pytest.approx(expected, rel=1e-12)
    gap = attr.prob - attr.baseline_probs
    assert float(gap.abs().min()) > 1e-5
    assert float((attr.scores.sum(1) - gap).abs().max() / gap.abs().max()) < 1e-5      # completeness
    with pytest.raises(QuintetError, match="'parisian' is 3 tokens"):
        integrated_gradients(model, tok, prompt, "parisian", steps=2)
