"""Tiny randomly initialised models of every supported architecture, built in the tests."""

from __future__ import annotations

import torch

WORDS = ("[PAD] [UNK] [CLS] [SEP] [MASK] the capital of france is paris rome italy city a in "
         "was born he she plays guitar piano language french italian . , ##s").split()


def bert_tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    return BertTokenizerFast(str(vocab), do_lower_case=True)


def word_tokenizer():
    """A whitespace word-level tokenizer without special tokens (for the causal LM)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


GATED = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM"),
         "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM")}
CAUSAL = ("gpt2", *GATED)
KINDS = ["bert", "roberta", "distilbert", "electra", *CAUSAL]


def tiny_model(kind: str, dtype=torch.float64, init: float = 0.3, seed: int = 0):
    import transformers as tf

    torch.manual_seed(seed)
    n = len(WORDS)
    common = dict(vocab_size=n, max_position_embeddings=40, initializer_range=init)
    if kind == "bert":
        model = tf.BertForMaskedLM(tf.BertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                                 intermediate_size=24, **common))
    elif kind == "roberta":
        model = tf.RobertaForMaskedLM(tf.RobertaConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                       intermediate_size=24, pad_token_id=0, bos_token_id=2,
                                                       eos_token_id=3, **dict(common, max_position_embeddings=44)))
    elif kind == "distilbert":
        model = tf.DistilBertForMaskedLM(tf.DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=24,
                                                             vocab_size=n, max_position_embeddings=40,
                                                             initializer_range=init))
    elif kind == "electra":
        model = tf.ElectraForMaskedLM(tf.ElectraConfig(embedding_size=16, hidden_size=16, num_hidden_layers=2,
                                                       num_attention_heads=2, intermediate_size=24, **common))
    elif kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=40, vocab_size=n,
                                                 initializer_range=init))
    elif kind in GATED:  # SwiGLU FFN, rotary positions, grouped-query attention (2 query heads, 1 KV head)
        config_cls, model_cls = GATED[kind]
        model = getattr(tf, model_cls)(getattr(tf, config_cls)(
            hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            head_dim=8, tie_word_embeddings=kind == "llama", **common))
    else:
        raise ValueError(kind)
    return model.to(dtype).eval()


def tokenizer_for(kind: str, tmp_path):
    return word_tokenizer() if kind in CAUSAL else bert_tokenizer(tmp_path)


def prompt_for(kind: str) -> str:
    return "the capital of france is" if kind in CAUSAL else "the capital of france is [MASK] ."
