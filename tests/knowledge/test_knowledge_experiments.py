"""The §4-5 experiment drivers (find_neurons, suppress_amplify, update_facts, erase_relations) on a
tiny BERT and hand-written fact bags: every reported number is recomputed from the primitives."""

from __future__ import annotations

import pytest
import torch
from knowledge_models import tiny_model, tokenizer_for

from quintet.knowledge import (
    activation_baseline,
    answer_probs,
    coarse_neurons,
    integrated_gradients,
    most_common,
    refine_neurons,
    relative_change,
)
from quintet.knowledge.editing import perplexity
from quintet.knowledge.experiments import (
    erase_relations,
    find_neurons,
    suppress_amplify,
    update_facts,
)
from quintet.knowledge.pararel import FactBag

BAGS = [
    FactBag("P36", "france", "paris", ("the capital of france is [MASK] .", "[MASK] is the capital of france .")),
    FactBag("P36", "italy", "rome", ("the capital of italy is [MASK] .", "[MASK] is the capital of italy .")),
    FactBag("P37", "france", "french", ("the language of france is [MASK] .", "france language is [MASK] .")),
    FactBag("P37", "italy", "italian", ("the language of italy is [MASK] .", "italy language is [MASK] ."),
            heldout=("italian is the language of [MASK] .",)),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, tok = tiny_model("bert", init=0.5), tokenizer_for("bert", tmp_path_factory.mktemp("tok"))
    facts, sharing, seconds = find_neurons(model, tok, BAGS, steps=4, log=lambda _: None)
    return model, tok, facts, sharing, seconds


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_find_neurons_matches_the_primitives(setup):
    model, tok, facts, sharing, seconds = setup
    assert [f.bag for f in facts] == BAGS and seconds > 0
    assert set(sharing) == {"P36", "P37"}
    for f in facts:
        for i, prompt in enumerate(f.bag.prompts):
            attr = integrated_gradients(model, tok, prompt, f.bag.object, steps=4)
            torch.testing.assert_close(f.scores[i], attr.scores, rtol=0, atol=0)
            torch.testing.assert_close(f.activations[i], attr.activations, rtol=0, atol=0)
            assert float(f.probs[i]) == pytest.approx(attr.prob, rel=1e-6)      # stored as float32
        t, p = sharing[f.bag.relation]["t"], sharing[f.bag.relation]["p"]
        assert t >= 0.2 and 0.0 <= p < 1.0
        assert f.coarse == [coarse_neurons(s, t) for s in f.scores]
        assert f.neurons == refine_neurons(f.coarse, p)
        assert f.baseline == activation_baseline(f.activations, len(f.neurons))
    assert sum(len(f.neurons) for f in facts) > 0


def test_suppress_amplify_is_the_relation_mean_of_relative_changes(setup):
    model, tok, facts, _, _ = setup
    out = suppress_amplify(model, tok, facts, unrelated_prompts=3)
    for method in ("kn", "baseline"):
        for mode, factor in (("suppress", 0.0), ("amplify", 2.0)):
            per_relation = {}
            for f in facts:
                if not f.neurons:
                    continue
                neurons = f.neurons if method == "kn" else f.baseline
                answers = [f.bag.object] * len(f.bag.prompts)
                before = answer_probs(model, tok, f.bag.prompts, answers).prob
                after = answer_probs(model, tok, f.bag.prompts, answers, neurons, factor).prob
                per_relation.setdefault(f.bag.relation, []).append(relative_change(before, after))
            expected = sum(sum(v) / len(v) for v in per_relation.values()) / len(per_relation)
            assert out["overall"][f"{method}/{mode}/own"] == pytest.approx(expected, rel=1e-12)
    # the neurons with the highest attribution carry the fact (measured: -52 % / +66 %)
    assert -1.0 <= out["overall"]["kn/suppress/own"] < 0 < out["overall"]["kn/amplify/own"]
    heldout = [k for k in out["overall"] if k.endswith("/heldout")]
    assert ("kn/suppress/heldout" in heldout) == bool(facts[3].neurons)


def test_update_and_erase_report_measured_values_and_restore_weights(setup):
    model, tok, facts, _, _ = setup
    before = _weights(model)
    upd = update_facts(model, tok, facts, per_relation=1, others=3)
    erase = erase_relations(model, tok, facts, top=3, others=4)
    after = _weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert set(upd) == {"embedding", "slot"}
    for result in upd.values():
        rows, mean = result["rows"], result["mean"]
        assert mean["facts"] == len(rows) == 2          # one per relation
        for key in ("prompt_success", "fact_success", "old_changed", "change_intra", "change_inter"):
            assert all(0.0 <= r[key] <= 1.0 for r in rows)
            assert mean[key] == pytest.approx(sum(r[key] for r in rows) / max(1, len(rows)))
        assert all(r["n_neurons"] >= 1 for r in rows)
    by_rel = {}
    for f in facts:
        by_rel.setdefault(f.bag.relation, []).append(f)
    assert [row["relation"] for row in erase["rows"]] == ["P36", "P37"]
    for row in erase["rows"]:
        group = by_rel[row["relation"]]
        assert row["n_neurons"] == len(most_common([f.neurons for f in group], 3))
        prompts = [p for f in group for p in f.bag.prompts]
        answers = [f.bag.object for f in group for _ in f.bag.prompts]
        scores = answer_probs(model, tok, prompts, answers)
        assert row["ppl_before"] == pytest.approx(perplexity(scores.logprob), rel=1e-12)
        assert row["acc_before"] == pytest.approx(float(scores.correct.float().mean()))
        assert row["ppl_after"] != row["ppl_before"]       # zeroed value slots change the output


def test_find_neurons_cache_resumes_and_excluded_layers_are_not_searched(setup, tmp_path):
    from quintet.knowledge.experiments import searched

    model, tok, facts, sharing, _ = setup
    first, _, seconds = find_neurons(model, tok, BAGS, steps=4, log=lambda _: None, cache=tmp_path,
                                     with_baseline=True, exclude_layers=(0,))
    assert seconds > 0 and len(list(tmp_path.glob("*.safetensors"))) == len(BAGS)
    again, again_sharing, cached_seconds = find_neurons(model, tok, BAGS, steps=4, log=lambda _: None,
                                                        cache=tmp_path, with_baseline=True, exclude_layers=(0,))
    assert cached_seconds != cached_seconds                           # NaN: nothing was attributed
    for a, b, plain in zip(first, again, facts):
        torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0)
        torch.testing.assert_close(a.scores, plain.scores, rtol=1e-9, atol=1e-15)   # every layer attributed
        assert a.neurons == b.neurons and a.baseline_probs.shape == (len(a.bag.prompts), 3)
        t = again_sharing[a.bag.relation]["t"]
        assert a.coarse == [coarse_neurons(searched(s, (0,)), t) for s in a.scores]
        assert all(layer != 0 for prompt in a.coarse for layer, _ in prompt)
    masked = searched(facts[0].scores[0], (0,))
    assert bool(torch.isinf(masked[0]).all()) and torch.equal(masked[1:], facts[0].scores[0][1:])


def test_update_facts_draws_new_objects_from_the_given_pool(setup):
    model, tok, facts, _, _ = setup
    pool = {"P36": ["italy"], "P37": ["piano"]}
    upd = update_facts(model, tok, facts, per_relation=2, others=3, objects=pool, scales=("slot",))
    assert upd["slot"]["mean"]["facts"] >= 1
    allowed = {"P36": {"paris", "rome", "italy"}, "P37": {"french", "italian", "piano"}}
    assert all(r["relation"] in allowed for r in upd["slot"]["rows"])


def test_relation_bootstrap_interval_brackets_the_mean_and_collapses_without_spread():
    from quintet.knowledge.experiments import relation_bootstrap

    same = {r: {"kn/suppress/unrelated": -0.02} for r in "ABCD"}
    lo, hi = relation_bootstrap(same, ["kn/suppress/unrelated"])["kn/suppress/unrelated"]
    assert lo == pytest.approx(-0.02) and hi == pytest.approx(-0.02)
    spread = {r: {"k": v} for r, v in zip("ABCDEFGH", [-0.10, -0.05, -0.02, 0.0, 0.01, 0.02, 0.04, 0.10])}
    lo, hi = relation_bootstrap(spread, ["k"], seed=3)["k"]
    mean = sum(v["k"] for v in spread.values()) / len(spread)
    assert -0.10 <= lo < mean < hi <= 0.10
    assert relation_bootstrap(spread, ["k"], seed=3)["k"] == (lo, hi)   # seeded: reproducible
