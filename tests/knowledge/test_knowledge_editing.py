"""Knowledge neurons: thresholds and refining (values + hypothesis invariants), suppress/amplify,
value-slot edits that restore weights exactly, and the equivalence of last-layer suppression with
zeroed value slots for every architecture (which checks each adapter's value-slot orientation)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from knowledge_models import KINDS, prompt_for, tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge import (
    activation_baseline,
    adapt_refinement,
    adapt_sharing_ratio,
    answer_probs,
    coarse_neurons,
    edit_value_slots,
    erase_relation,
    exclusive,
    get_adapter,
    most_common,
    refine_neurons,
    relative_change,
    update_fact,
)


def test_coarse_threshold_values():
    scores = torch.tensor([[0.0, 1.0, 0.19], [0.2, -3.0, 0.5]])
    assert coarse_neurons(scores, 0.2) == [(0, 1), (1, 0), (1, 2)]
    assert coarse_neurons(torch.full((2, 2), -1.0)) == []
    with pytest.raises(QuintetError, match="threshold t must be in"):
        coarse_neurons(scores, 0.0)


def test_refine_counts_more_than_p():
    bag = [[(0, 1), (1, 2)], [(0, 1)], [(0, 1), (1, 2)], [(2, 0)]]
    assert refine_neurons(bag, 0.5) == [(0, 1)]  # 3 of 4 > 2; (1, 2) has 2, not more than 2
    assert refine_neurons(bag, 0.25) == [(0, 1), (1, 2)]
    assert refine_neurons(bag, 0.0) == [(0, 1), (1, 2), (2, 0)]
    with pytest.raises(QuintetError, match="sharing ratio p"):
        refine_neurons(bag, 1.0)


neuron = st.tuples(st.integers(0, 3), st.integers(0, 7))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(neuron, max_size=6), min_size=1, max_size=6), st.floats(0, 0.95), st.floats(0, 0.95))
def test_refining_is_monotone_in_p(bag, p, q):
    lo, hi = sorted((p, q))
    assert set(refine_neurons(bag, hi)) <= set(refine_neurons(bag, lo))


def test_adapted_p_lands_in_band():
    # each fact: 6 prompts; neuron k appears in k of them -> #refined decreases with p
    bag = [[(0, k) for k in range(1, 7) if j < k] for j in range(6)]
    p = adapt_sharing_ratio([bag, bag], low=2, high=3)
    assert 2 <= len(refine_neurons(bag, p)) <= 3


def test_activation_baseline_and_relation_helpers():
    acts = torch.tensor([[[1.0, 5.0], [3.0, 0.0]], [[1.0, 3.0], [3.0, 0.0]]])
    assert activation_baseline(acts, 2) == [(0, 1), (1, 0)]
    facts = [[(0, 1), (1, 1)], [(0, 1)], [(0, 1), (2, 2)], [(2, 2)]]
    assert most_common(facts, 2) == [(0, 1), (2, 2)]
    assert exclusive([(0, 1), (1, 1)], facts[1:], max_share=0.25) == [(1, 1)]
    # a small relation (8 facts): the fact's own neurons do not count as shared
    others = [[(3, k)] for k in range(7)]
    assert exclusive([(1, 1), (3, 0)], others, max_share=0.1) == [(1, 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_last_layer_suppression_equals_zeroed_value_slots(kind, tmp_path):
    model, tok = tiny_model(kind), tokenizer_for(kind, tmp_path)
    adapter = get_adapter(model)
    last = adapter.n_layers - 1
    neurons = [(last, 0), (last, 3), (last, 5)]
    prompts, answers = [prompt_for(kind), prompt_for(kind).replace("france", "italy")], ["paris", "rome"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    suppressed = answer_probs(model, tok, prompts, answers, neurons, factor=0.0).prob
    with erase_relation(model, neurons) as editor:
        erased = answer_probs(model, tok, prompts, answers).prob
        assert editor.edited == neurons
        assert adapter.value_slots(last)[3].abs().sum() == 0
    torch.testing.assert_close(suppressed, erased, rtol=1e-9, atol=1e-15)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_suppress_amplify_and_identity(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    p, a = [prompt_for("bert")], ["paris"]
    plain = answer_probs(model, tok, p, a)
    same = answer_probs(model, tok, p, a, [(0, 1)], factor=1.0)
    torch.testing.assert_close(plain.prob, same.prob)
    doubled = answer_probs(model, tok, p, a, [(1, 2), (2, 4)], factor=2.0)
    assert relative_change(plain.prob, doubled.prob) != 0
    assert relative_change(torch.tensor([0.5]), torch.tensor([0.25])) == pytest.approx(-0.5)
    with pytest.raises(QuintetError, match=r"neuron \(9, 0\) is outside"):
        answer_probs(model, tok, p, a, [(9, 0)], factor=0.0)


def test_update_fact_moves_value_slots_and_restores(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    adapter = get_adapter(model)
    old, new = tok.convert_tokens_to_ids(["paris", "rome"])
    emb = adapter.word_embeddings().detach().clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    slot = adapter.value_slots(1)[4].detach().clone()
    with update_fact(model, [(1, 4), (2, 0)], old, new, lambda1=1.0, lambda2=8.0):
        torch.testing.assert_close(adapter.value_slots(1)[4], slot - emb[old] + 8 * emb[new])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the authors' released variant: both embeddings rescaled to the slot's norm first
    with update_fact(model, [(1, 4)], old, new, lambda1=1.0, lambda2=8.0, scale="slot"):
        size = slot.norm()
        expected = slot + size * (-emb[old] / emb[old].norm() + 8 * emb[new] / emb[new].norm())
        torch.testing.assert_close(adapter.value_slots(1)[4], expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(QuintetError, match="unknown update scale 'norm'"):
        with update_fact(model, [(1, 4)], old, new, scale="norm"):
            pass
    # restoring also happens when the body raises
    with pytest.raises(RuntimeError):
        with edit_value_slots(model) as ed:
            ed.zero(0, 0)
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_adapt_refinement_raises_t_only_when_p_is_exhausted():
    # 3 prompts per fact; 8 neurons score 1.0 in every prompt, 2 of them score 2.0: at t = 0.2
    # even "coarse in every prompt" keeps 8 > 5, so t must rise above 0.5 to keep the 2 strong ones
    scores = torch.zeros(2, 10)
    scores[0, :8] = 1.0
    scores[0, :2] = 2.0
    fact = [scores.clone() for _ in range(3)]
    t, p = adapt_refinement([fact, fact], low=2, high=5)
    assert 0.5 < t <= 1.0
    assert refine_neurons([coarse_neurons(s, t) for s in fact], p) == [(0, 0), (0, 1)]
    # when p alone reaches the band, t stays at the paper's 0.2
    spread = [torch.zeros(2, 10) for _ in range(4)]
    for k, s in enumerate(spread):
        s[1, :3] = 1.0
        s[1, 3 + k] = 1.0  # one prompt-specific neuron each
    t, p = adapt_refinement([spread], low=2, high=5)
    assert t == 0.2 and len(refine_neurons([coarse_neurons(s, t) for s in spread], p)) == 3
    with pytest.raises(QuintetError, match="threshold"):
        adapt_refinement([fact], threshold=0.95, max_threshold=0.9)
