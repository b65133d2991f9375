"""PARAREL for a next-token LM (templates ending in [Y], space-prefixed single-token objects, the
knowledge filter) and the helpers of the pretrained-LM reproduction."""

from __future__ import annotations

import random

import pytest
import torch
from knowledge_models import tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge.experiments import known_facts, memorised, random_neurons
from quintet.knowledge.pararel import FactBag, causal_bags, causal_template
from quintet.knowledge.prompts import answer_id
from quintet.knowledge.reproduce_lm import select_facts


@pytest.mark.parametrize("pattern, expected", [
    ("[X] was born in [Y].", "[X] was born in [Y]"),
    ("The capital of [X] is [Y] .", "The capital of [X] is [Y]"),
    ("[X]'s capital, [Y].", "[X]'s capital, [Y]"),
    ("[X],  a subclass of [Y]", "[X],  a subclass of [Y]"),
    ("[Y] is the capital of [X].", None),          # the object does not end the prompt
    ("[X] and [Y] share a border.", None),
    ("[Y] [X]", None),                             # no subject before the object
    ("[X] is [Y] or [Y].", None),
])
def test_causal_template_keeps_only_object_final_patterns(pattern, expected):
    assert causal_template(pattern) == expected


def test_causal_answer_needs_the_space_prefixed_form():
    # "paris" alone is one token of this byte-level BPE but " paris" is two: a next-token model
    # would read "is" + " paris", so a causal LM refuses the answer; a masked LM takes "paris"
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["paris rome", "paris x rome", "paris rome rome"], vocab_size=270, min_frequency=1,
                            show_progress=False, special_tokens=["<unk>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, unk_token="<unk>")
    assert len(tok(" rome", add_special_tokens=False)["input_ids"]) == 1
    plain = tok("paris", add_special_tokens=False)["input_ids"]
    assert len(plain) == 1 and len(tok(" paris", add_special_tokens=False)["input_ids"]) > 1
    assert answer_id(tok, "paris") == plain[0]
    assert answer_id(tok, "rome", causal=True) == tok(" rome", add_special_tokens=False)["input_ids"][0]
    with pytest.raises(QuintetError, match="'paris' is 2 tokens"):
        answer_id(tok, "paris", causal=True)


def test_known_facts_uses_top1_or_threshold_on_enough_prompts(tmp_path):
    model, tok = tiny_model("llama", init=0.5), tokenizer_for("llama", tmp_path)
    bags = [FactBag("P36", s, o, (f"the capital of {s} is", f"{s} capital city is", f"the city of {s} is"))
            for s, o in (("france", "paris"), ("italy", "rome"), ("france", "guitar"))]
    from quintet.knowledge import answer_probs

    for b in bags:
        s = answer_probs(model, tok, list(b.prompts), [b.object] * 3)
        for min_prob in (None, 0.03):
            hits = s.correct if min_prob is None else s.correct | (s.prob >= min_prob)
            for fraction in (0.3, 0.5, 1.0):
                expected = int(hits.sum()) >= fraction * 3
                assert (memorised(model, tok, [b], fraction, min_prob) == [b]) == expected
                # the first-prompt screen is exact when every prompt must pass
                if fraction == 1.0:
                    assert (known_facts(model, tok, [b], fraction, min_prob) == [b]) == expected
                if not bool(hits[0]):
                    assert known_facts(model, tok, [b], fraction, min_prob) == []
    assert memorised(model, tok, bags, 0.0, None) == bags       # min_fraction 0 keeps all


def test_select_facts_round_robin_caps_and_random_neurons():
    bags = [FactBag(r, f"{r}-{i}", "o", ("p",)) for r, n in (("P1", 6), ("P2", 1), ("P3", 3)) for i in range(n)]
    chosen = select_facts(bags, per_relation=2, limit=4, seed=0)
    assert len(chosen) == 4
    assert [b.relation for b in chosen] == ["P1", "P2", "P3", "P1"]
    assert len(select_facts(bags, per_relation=10, limit=100, seed=0)) == 10
    assert select_facts(bags, 2, 4, seed=1) == select_facts(bags, 2, 4, seed=1)
    picked = random_neurons(3, 5, 15, random.Random(0))
    assert sorted(set(picked)) == picked and len(picked) == 15 and picked[-1] == (2, 4)
    assert random_neurons(30, 1536, 4, random.Random(1)) == random_neurons(30, 1536, 4, random.Random(1))


def test_causal_bags_filters_and_counts(data_dir, tmp_path):
    tok = tokenizer_for("llama", tmp_path)       # whitespace words: single-token objects are rare
    bags, counts = causal_bags(tok, facts_per_relation=5, data_dir=data_dir)
    assert counts.relations == 34 and counts.relations_causal == 25
    assert counts.facts >= counts.facts_single_token >= counts.facts_sampled == len(bags)
    for bag in bags:
        assert answer_id(tok, bag.object, causal=True) >= 0
        assert len(bag.heldout) == 1 and len(bag.prompts) >= 2
        for prompt in bag.prompts + bag.heldout:
            assert prompt.endswith(" [MASK]") and prompt.count("[MASK]") == 1 and bag.subject in prompt
        assert not set(bag.prompts) & set(bag.heldout)
    with pytest.raises(QuintetError, match="min_templates \\(1\\) must exceed heldout \\(1\\)"):
        causal_bags(tok, min_templates=1, data_dir=data_dir)


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "knowledge", "--model", "gpt5"], "unknown knowledge model 'gpt5'; expected one of: factlm, smollm2"),
    (["reproduce", "all", "--model", "gpt5"], "unknown knowledge model 'gpt5'"),
    (["reproduce", "sorting", "--model", "smollm2"], "--model 'smollm2' applies to knowledge only"),
])
def test_reproduce_model_option_errors_are_one_line(argv, message, tmp_path, capsys):
    from quintet.cli import main

    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quintet: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()          # refused before any method ran


def test_completeness_summary_is_the_mean_gap_per_layer():
    from quintet.knowledge.experiments import FactNeurons
    from quintet.knowledge.reproduce_lm import completeness

    bag = FactBag("P36", "france", "paris", ("a", "b"))
    scores = torch.zeros(2, 3, 4)
    scores[:, :, 0] = torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.1, 0.0]])          # Σ_i Attr per prompt, layer
    probs = torch.tensor([0.6, 0.4])
    p0 = torch.tensor([[0.0, 0.4, 0.5], [0.0, 0.3, 0.4]])                     # P(w̄) − P(0): .6 .2 .1 / .4 .1 0
    fact = FactNeurons(bag, [[], []], torch.zeros(2, 3, 4), scores, probs, baseline_probs=p0)
    out = completeness([fact])
    assert out["error_per_layer"] == pytest.approx([0.1, 0.0, 0.0], abs=1e-6)
    assert out["span_per_layer"] == pytest.approx([0.5, 0.15, 0.05], abs=1e-6)
    assert out["relative_error"] == pytest.approx(0.1 / 0.7, rel=1e-5)
    assert out["relative_error_layers_1_on"] == pytest.approx(0.0, abs=1e-6)
