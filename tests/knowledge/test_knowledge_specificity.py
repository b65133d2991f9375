"""Knowledge neurons shared across relations: overlap statistics, the inter-relation refinement,
single-neuron effects on unrelated facts, and the filter's length-sorted batches."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from knowledge_models import tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge.editing import answer_probs, relative_change
from quintet.knowledge.experiments import (
    find_neurons,
    memorised,
    suppress_amplify,
    unrelated_pairs,
    with_neurons,
)
from quintet.knowledge.pararel import FactBag
from quintet.knowledge.specificity import (
    check_on_heldout_facts,
    drop_inter_relation,
    inter_relation_neurons,
    overlap,
    relations_of,
    summarise_effects,
    unrelated_effect_per_neuron,
)

NEURONS = [[(1, 2), (3, 4), (5, 6)], [(1, 2), (3, 5)], [(1, 2), (3, 4), (7, 7)], [(9, 9)]]
RELATIONS = ["A", "A", "B", "C"]


def test_overlap_counts_shared_neurons_within_and_across_relations():
    out = overlap(NEURONS, RELATIONS)
    # same relation: facts 0 and 1 share (1, 2); across: 0-2 share 2, 1-2 share 1, the rest 0
    assert out == {"intra": 1.0, "inter": 3 / 5, "intra_pairs": 1, "inter_pairs": 5}
    assert overlap([[(0, 0)]], ["A"])["intra_pairs"] == 0


def test_inter_relation_neurons_are_dropped_and_the_rest_kept_in_order():
    assert relations_of(NEURONS, RELATIONS)[(1, 2)] == {"A", "B"}
    assert inter_relation_neurons(NEURONS, RELATIONS) == {(1, 2), (3, 4)}
    assert drop_inter_relation(NEURONS, RELATIONS) == [[(5, 6)], [(3, 5)], [(7, 7)], [(9, 9)]]
    # a neuron shared only within one relation stays
    assert drop_inter_relation([[(1, 1)], [(1, 1)]], ["A", "A"]) == [[(1, 1)], [(1, 1)]]
    with pytest.raises(QuintetError, match="one relation per fact"):
        overlap(NEURONS, RELATIONS[:2])


neuron_lists = st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=5), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(neuron_lists, st.data())
def test_dropping_leaves_no_neuron_in_two_relations(neurons, data):
    relations = data.draw(st.lists(st.sampled_from("ABC"), min_size=len(neurons), max_size=len(neurons)))
    kept = drop_inter_relation(neurons, relations)
    assert all(set(k) <= set(n) for k, n in zip(kept, neurons))
    assert not inter_relation_neurons(kept, relations)
    if len(set(relations)) == 1:
        assert kept == [list(n) for n in neurons]


BAGS = [
    FactBag("P36", "france", "paris", ("the capital of france is [MASK] .", "[MASK] is the capital of france .")),
    FactBag("P36", "italy", "rome", ("the capital of italy is [MASK] .", "[MASK] is the capital of italy .")),
    FactBag("P37", "france", "french", ("the language of france is [MASK] .", "france language is [MASK] .")),
    FactBag("P37", "italy", "italian", ("the language of italy is [MASK] .", "italy language is [MASK] .")),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, tok = tiny_model("bert", init=0.5), tokenizer_for("bert", tmp_path_factory.mktemp("tok"))
    plain, _, _ = find_neurons(model, tok, BAGS, steps=4, log=lambda _: None)
    specific, _, _ = find_neurons(model, tok, BAGS, steps=4, log=lambda _: None, specific=True)
    return model, tok, plain, specific


def test_find_neurons_specific_drops_exactly_the_inter_relation_neurons(setup):
    _, _, plain, specific = setup
    relations = [f.bag.relation for f in plain]
    expected = drop_inter_relation([f.neurons for f in plain], relations)
    assert [f.neurons for f in specific] == expected
    assert not inter_relation_neurons([f.neurons for f in specific], relations)
    assert all(len(s.baseline) == len(s.neurons) for s in specific)


def test_suppress_amplify_uses_the_same_unrelated_prompts_for_every_neuron_set(setup):
    model, tok, plain, _ = setup
    only_kn = suppress_amplify(model, tok, plain, unrelated_prompts=3, seed=5, methods=("kn",))["overall"]
    everything = suppress_amplify(model, tok, plain, unrelated_prompts=3, seed=5)["overall"]
    assert {k.split("/")[0] for k in only_kn} == {"kn"}
    for key, value in only_kn.items():
        assert everything[key] == pytest.approx(value, rel=1e-12)


def test_single_neuron_effects_are_measured_on_the_facts_unrelated_prompts(setup):
    model, tok, plain, _ = setup
    rows = unrelated_effect_per_neuron(model, tok, plain, unrelated_prompts=3, seed=2)
    assert len(rows) == sum(len(f.neurons) for f in plain if f.neurons)
    shared = inter_relation_neurons([f.neurons for f in plain], [f.bag.relation for f in plain])
    i = next(i for i, f in enumerate(plain) if f.neurons)
    f, row = plain[i], rows[0]
    prompts, answers = unrelated_pairs([g.bag for g in plain], f.bag.relation, 3, random.Random(2 * 1_000_003 + i))
    before = answer_probs(model, tok, prompts, answers).prob
    after = answer_probs(model, tok, prompts, answers, [f.neurons[0]], 0.0).prob
    assert (row["layer"], row["index"]) == f.neurons[0] and row["relation"] == f.bag.relation
    assert row["change"] == pytest.approx(relative_change(before, after), rel=1e-12)
    assert row["inter_relation"] == (f.neurons[0] in shared)
    summary = summarise_effects(rows, last_layer=2)
    assert summary["last layer"]["neurons"] + summary["other layers"]["neurons"] == len(rows)
    last = [r["change"] for r in rows if r["layer"] == 2]
    if last:
        assert summary["last layer"]["mean_change"] == pytest.approx(sum(last) / len(last))


def test_memorised_in_length_sorted_batches_keeps_each_facts_result(setup):
    model, tok, _, _ = setup
    bags = BAGS + [FactBag("P36", "rome", "italy", ("rome is the capital city of [MASK] .",))]
    scores = answer_probs(model, tok, [p for b in bags for p in b.prompts], [b.object for b in bags for _ in b.prompts])
    top1, i = [], 0
    for b in bags:
        top1.append(bool(scores.correct[i : i + len(b.prompts)].all()))
        i += len(b.prompts)
    assert memorised(model, tok, bags, 1.0) == [b for b, hit in zip(bags, top1) if hit]
    threshold = float(scores.prob.median())
    expected, i = [], 0
    for b in bags:
        n = len(b.prompts)
        hits = scores.correct[i : i + n] | (scores.prob[i : i + n] >= threshold)
        if int(hits.sum()) >= 0.5 * n:
            expected.append(b)
        i += n
    assert memorised(model, tok, bags, 0.5, threshold) == expected


HELDOUT = [
    FactBag("P36", "france", "paris", ("a capital of france is [MASK] .",)),
    FactBag("P37", "italy", "italian", ("the language of italy is [MASK] .", "italy language is [MASK] .")),
    FactBag("P1376", "rome", "italy", ("rome is the capital city of [MASK] .",)),
]


def test_heldout_check_keeps_exactly_the_neurons_below_the_tolerance(setup):
    model, tok, plain, _ = setup
    neurons, relations = [f.neurons for f in plain], [f.bag.relation for f in plain]
    everything, rows = check_on_heldout_facts(model, tok, neurons, relations, HELDOUT, tolerance=1e9, prompts=2, seed=3)
    assert everything == [list(map(tuple, n)) for n in neurons] and len(rows) == sum(map(len, neurons))
    i = next(i for i, n in enumerate(neurons) if n)
    prompts, answers = unrelated_pairs(HELDOUT, relations[i], 2, random.Random(3 * 1_000_003 + i))
    assert prompts and set(answers) <= {b.object for b in HELDOUT if b.relation != relations[i]}
    before = answer_probs(model, tok, prompts, answers).prob
    by_hand = [float(((answer_probs(model, tok, prompts, answers, [n], 0.0).prob - before) / before).abs().mean())
               for n in neurons[i]]
    start = sum(map(len, neurons[:i]))
    assert [r["abs_change"] for r in rows[start:start + len(neurons[i])]] == pytest.approx(by_hand, rel=1e-9)
    cut = sorted(r["abs_change"] for r in rows)[len(rows) // 2]
    kept, rows = check_on_heldout_facts(model, tok, neurons, relations, HELDOUT, tolerance=cut, prompts=2, seed=3)
    flat = iter(rows)
    assert kept == [[tuple(n) for n in fact if next(flat)["abs_change"] < cut] for fact in neurons]
    assert 0 < sum(map(len, kept)) < len(rows)
    checked = with_neurons(plain, kept)
    assert [c.neurons for c in checked] == kept and all(len(c.baseline) == len(c.neurons) for c in checked)
    assert [f.neurons for f in plain] == neurons  # the originals are left alone


def test_heldout_check_refuses_a_bad_tolerance_and_missing_heldout_facts(setup):
    model, tok, plain, _ = setup
    neurons, relations = [f.neurons for f in plain], [f.bag.relation for f in plain]
    with pytest.raises(QuintetError, match="tolerance must be > 0"):
        check_on_heldout_facts(model, tok, neurons, relations, HELDOUT, tolerance=0.0)
    with pytest.raises(QuintetError, match="prompts must be >= 1, got 0"):
        check_on_heldout_facts(model, tok, neurons, relations, HELDOUT, prompts=0)
    i = next(i for i, n in enumerate(neurons) if n)
    with pytest.raises(QuintetError, match="no held-out facts of a relation other than"):
        check_on_heldout_facts(model, tok, [neurons[i]], [relations[i]], [b for b in HELDOUT if b.relation == relations[i]])


def test_effect_table_marks_the_refining_used_and_shows_counts_and_spread():
    from quintet.knowledge.report_lm import VARIANTS, effect_table

    def result(own: float, unrelated: float) -> dict:
        keys = [f"{m}/{mode}/{part}" for m in ("kn", "baseline", "random") for mode in ("suppress", "amplify")
                for part in ("own", "heldout", "unrelated")]
        return {k: own if k.endswith("own") else unrelated for k in keys}

    m = {"suppress_amplify": result(-0.5, -0.01), "suppress_amplify_spread": {"kn/suppress/unrelated": 0.03},
         "suppress_amplify_facts": 19, "suppress_amplify_interval": {"kn/suppress/unrelated": (-0.02, 0.004)},
         "suppress_amplify_variants": {"paper": {"overall": result(-0.7, -0.08), "spread": {}, "facts": 30}},
         "factlm_suppress_amplify": None}
    lines = effect_table(m, "checked").splitlines()
    used = next(line for line in lines if line.startswith(f"| suppress | {VARIANTS['checked']} (used)"))
    cells = [c.strip() for c in used.split("|")[1:-1]]
    assert cells[2:7] == ["19", "-50.00 %", "-1.00 %", "-1.00 % [-2.0, +0.4]", "+3.00 %"]
    assert cells[7:9] == ["-37.03 %", "-0.39 %"]  # the paper beside the neurons used ...
    paper = next(line for line in lines if line.startswith(f"| suppress | {VARIANTS['paper']} |"))
    assert [c.strip() for c in paper.split("|")[1:-1]][2:9] == ["30", "-70.00 %", "-8.00 %", "-8.00 %", "", "-37.03 %", "-0.39 %"]
    random_row = next(line for line in lines if line.startswith("| amplify | random neurons"))
    assert [c.strip() for c in random_row.split("|")[1:-1]][7:] == ["", "", "", ""]  # ... not beside the controls
