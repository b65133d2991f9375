"""The whole pipeline on a real pretrained checkpoint nobody here trained: AntiBERTy (antiberty
0.1.3 on PyPI bundles a BERT masked LM of antibody sequences), loaded with ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quintet.knowledge import (
    KnowledgeProbe,
    answer_probs,
    coarse_neurons,
    erase_relation,
    refine_neurons,
    update_fact,
)

HEAVY = "EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQMNSLRAEDTAVYYCAK"


@pytest.fixture(scope="module")
def antiberty():
    pkg = pytest.importorskip("antiberty")
    from transformers import BertForMaskedLM, BertTokenizerFast

    root = Path(pkg.__file__).parent / "trained_models"
    model = BertForMaskedLM.from_pretrained(root / "AntiBERTy_md_smooth").eval()
    tokenizer = BertTokenizerFast(str(root / "vocab.txt"), do_lower_case=False)
    return model, tokenizer


def _masked(seq: str, i: int) -> tuple[str, str]:
    letters = list(seq)
    answer, letters[i] = letters[i], "[MASK]"
    return " ".join(letters), answer


def test_pipeline_on_antiberty(antiberty):
    torch.manual_seed(0)
    model, tok = antiberty
    probe = KnowledgeProbe(model, tok, steps=2, threshold=0.2)
    # one "fact" (the residue C at position 21), three context variants of it
    prompt, answer = _masked(HEAVY[12:32], 9)
    prompts = [prompt, _masked(HEAVY[14:34], 7)[0], _masked(HEAVY[10:30], 11)[0]]
    assert answer == "C"
    before = answer_probs(model, tok, prompts, ["C"] * 3)
    assert before.correct.all()  # the pretrained model knows the conserved cysteine
    attr = probe.attribute(prompts[0], "C", with_baseline=True)
    assert attr.scores.shape == (8, 2048) and torch.isfinite(attr.scores).all()
    assert attr.prob == pytest.approx(float(before.prob[0]), rel=1e-4)
    # completeness within the coarse 4-step Riemann error
    gap = attr.prob - attr.baseline_probs
    assert attr.scores.sum() > 0 and gap.sum() > 0  # 2 steps on a saturated probability: rough sums
    coarse = [coarse_neurons(probe.attribute(p, "C").scores) for p in prompts]
    neurons = refine_neurons(coarse, 0.5)
    assert 1 <= len(neurons) <= 200
    suppressed = answer_probs(model, tok, prompts, ["C"] * 3, neurons, factor=0.0).prob
    amplified = answer_probs(model, tok, prompts, ["C"] * 3, neurons, factor=2.0).prob
    assert suppressed.mean() < before.prob.mean() < amplified.mean() + 1e-6
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with update_fact(model, neurons, tok.convert_tokens_to_ids("C"), tok.convert_tokens_to_ids("W")):
        updated = answer_probs(model, tok, prompts, ["W"] * 3).prob
    with erase_relation(model, neurons):
        answer_probs(model, tok, prompts, ["C"] * 3)
    assert updated.mean() > answer_probs(model, tok, prompts, ["W"] * 3).prob.mean()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
