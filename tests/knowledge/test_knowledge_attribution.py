"""Integrated gradients: completeness, an independent step-by-step oracle, adapters of every
architecture, Riemann and Gauss-Legendre rules, gradcheck of the hooked probability."""

from __future__ import annotations

import math

import pytest
import torch
from knowledge_models import KINDS, prompt_for, tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge import (
    gauss_legendre,
    get_adapter,
    integrated_gradients,
    quadrature,
    step_grid,
)
from quintet.knowledge.attribution import layer_groups
from quintet.knowledge.prompts import encode


def _prob_with(adapter, batch, layer, values):
    """P(gold) with the activation of ``layer`` at the target replaced by ``values`` (batch 1)."""
    pos = int(batch.positions[0])

    def fn(out):
        return out.index_put((torch.tensor([0]), torch.tensor([pos])), values[None])

    handle = adapter.hook_activations(layer, fn)
    try:
        logits = adapter.model(**batch.inputs).logits
    finally:
        handle.remove()
    return logits[0, pos].softmax(-1)[batch.targets[0]]


def _oracle(adapter, batch, layer, alphas, real, weights=None):
    """Eq. 4 one step at a time: w̄ Σ_k c_k ∂P(α_k w̄)/∂w (c_k = 1/m unless given), each step its
    own forward and backward."""
    weights = [1.0 / len(alphas)] * len(alphas) if weights is None else weights
    total = torch.zeros_like(real)
    for a, c in zip(alphas, weights):
        x = (a * real).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_prob_with(adapter, batch, layer, x), x)
        total += c * g
    return real * total


@pytest.mark.parametrize("kind", KINDS)
def test_matches_step_by_step_oracle_and_completeness(kind, tmp_path):
    model, tok = tiny_model(kind), tokenizer_for(kind, tmp_path)
    adapter = get_adapter(model)
    attr = integrated_gradients(model, tok, prompt_for(kind), "paris", steps=4, with_baseline=True)
    batch = encode(tok, [prompt_for(kind)], ["paris"], adapter.causal)
    for layer in range(adapter.n_layers):
        expected = _oracle(adapter, batch, layer, step_grid(4).tolist(), attr.activations[layer])
        torch.testing.assert_close(attr.scores[layer], expected, rtol=1e-9, atol=1e-12)
        p0 = _prob_with(adapter, batch, layer, torch.zeros_like(attr.activations[layer]))
        assert attr.baseline_probs[layer].item() == pytest.approx(p0.item(), rel=1e-9)
    assert attr.scores.shape == (adapter.n_layers, adapter.n_neurons)


def _model_calls(model):
    """A list that grows by one entry per forward call of ``model`` (and the hook's handle)."""
    calls = []
    return calls, model.register_forward_hook(lambda *_: calls.append(1))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_staircase_equals_per_layer_passes(kind, attn, tmp_path):
    # one staircase pass (all layers' rows in one batch) vs one pass per layer (max_rows = m + 2
    # leaves room for one layer: the per-layer reference), float32, with the eager attention's
    # batch-1 4-D mask and SDPA both broadcasting over the grown batch
    model, tok = tiny_model(kind, dtype=torch.float32, init=0.5), tokenizer_for(kind, tmp_path)
    model.set_attn_implementation(attn)
    adapter = get_adapter(model)
    calls, handle = _model_calls(model)
    kw = dict(steps=5, with_baseline=True)
    # a causal LM runs the prompt minus its last token once more per pass, into the key/value cache
    passes = 2 if adapter.causal else 1
    one = integrated_gradients(model, tok, prompt_for(kind), "paris", max_rows=None, **kw)
    assert len(calls) == passes
    per_layer = integrated_gradients(model, tok, prompt_for(kind), "paris", max_rows=5 + 2, **kw)
    assert len(calls) == passes * (1 + adapter.n_layers)
    handle.remove()
    scale = float(per_layer.scores.abs().max())
    assert scale > 0
    assert float((one.scores - per_layer.scores).abs().max()) / scale < 1e-5
    torch.testing.assert_close(one.baseline_probs, per_layer.baseline_probs, rtol=1e-5, atol=1e-7)
    assert one.prob == pytest.approx(per_layer.prob, rel=1e-5)
    # row 0 runs in batches of different sizes: float32 rounding differs, ~1e-6 of the scale
    act_scale = float(per_layer.activations.abs().max())
    torch.testing.assert_close(one.activations, per_layer.activations, rtol=0, atol=1e-5 * act_scale)
    # a subset starts its rows at the requested layers only; order and repeats do not matter
    top = adapter.n_layers - 1
    subset = integrated_gradients(model, tok, prompt_for(kind), "paris", layers=[top, 0, top], **kw)
    assert subset.layers == [0, top]
    for layer in range(adapter.n_layers):
        expected = per_layer.scores[layer] if layer in (0, top) else torch.zeros_like(per_layer.scores[layer])
        torch.testing.assert_close(subset.scores[layer], expected, rtol=1e-5, atol=1e-5 * scale)


def test_layer_groups_respect_max_rows():
    assert layer_groups([0, 1, 2, 3, 4], 20, None) == [[0, 1, 2, 3, 4]]
    assert layer_groups([0, 1, 2, 3, 4], 20, 41) == [[0, 1], [2, 3], [4]]      # 1 + 2 * 20 rows
    assert layer_groups([0, 1, 2, 3, 4], 20, 40) == [[0], [1], [2], [3], [4]]
    assert layer_groups([1, 3], 21, 5) == [[1], [3]]                           # at least one layer
    assert layer_groups(list(range(12)), 21, 256) == [list(range(12))]         # BERT-base, one pass
    with pytest.raises(QuintetError, match="max_rows must be >= 1"):
        layer_groups([0], 20, 0)


def test_completeness_converges_as_steps_grow(tmp_path):
    model, tok = tiny_model("bert", init=0.5), tokenizer_for("bert", tmp_path)
    errors = []
    for steps in (5, 50, 500):
        attr = integrated_gradients(model, tok, prompt_for("bert"), "paris", steps=steps, with_baseline=True)
        gap = attr.prob - attr.baseline_probs
        errors.append(float((attr.scores.sum(1) - gap).abs().max() / gap.abs().max()))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 2e-3


def test_left_and_right_rules_and_custom_grid(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    p = prompt_for("bert")
    right = integrated_gradients(model, tok, p, "paris", steps=4)
    left = integrated_gradients(model, tok, p, "paris", steps=4, rule="left")
    custom_right = integrated_gradients(model, tok, p, "paris", alphas=[0.25, 0.5, 0.75, 1.0])
    torch.testing.assert_close(right.scores, custom_right.scores)
    assert step_grid(4, "left").tolist() == [0.0, 0.25, 0.5, 0.75]
    assert not torch.allclose(right.scores, left.scores)
    only = integrated_gradients(model, tok, p, "paris", steps=4, layers=[1])
    torch.testing.assert_close(only.scores[1], right.scores[1], rtol=1e-10, atol=1e-14)
    assert only.scores[0].abs().sum() == 0


def test_gradcheck_of_hooked_probability(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    adapter = get_adapter(model)
    batch = encode(tok, [prompt_for("bert")], ["paris"], False)
    x = torch.randn(adapter.n_neurons, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: _prob_with(adapter, batch, 1, v), (x,))


def test_top_neurons_sorted(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    top = integrated_gradients(model, tok, prompt_for("bert"), "paris", steps=3).top(5)
    assert len(top) == 5 and all(a[2] >= b[2] for a, b in zip(top, top[1:]))


@pytest.mark.parametrize(
    "prompt, answer, message",
    [
        ("the capital of france is paris .", "paris", r"has 0 \[MASK\] tokens"),
        ("[MASK] capital of [MASK] is paris", "paris", r"has 2 \[MASK\] tokens"),
        ("the capital of france is [MASK] .", "paris rome", "is 2 tokens.*single-token answer"),
        ("the capital of france is [MASK] .", "zzz", "not in the vocabulary"),
        ("the capital of france is [MASK] .", "", "answer is empty"),
    ],
)
def test_bad_prompts_and_answers(prompt, answer, message, tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    with pytest.raises(QuintetError, match=message):
        integrated_gradients(model, tok, prompt, answer, steps=2)


def test_bad_steps_rule_layer(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    p = prompt_for("bert")
    with pytest.raises(QuintetError, match="steps must be >= 1"):
        integrated_gradients(model, tok, p, "paris", steps=0)
    with pytest.raises(QuintetError, match="unknown integration rule 'middle'; expected one of: right, left, gauss"):
        integrated_gradients(model, tok, p, "paris", rule="middle")
    with pytest.raises(QuintetError, match="layer 7 does not exist"):
        integrated_gradients(model, tok, p, "paris", layers=[7])
    with pytest.raises(QuintetError, match="layer -1 does not exist"):
        integrated_gradients(model, tok, p, "paris", layers=[-1])
    with pytest.raises(QuintetError, match="layers is empty"):
        integrated_gradients(model, tok, p, "paris", layers=[])
    with pytest.raises(QuintetError, match="max_rows must be >= 1"):
        integrated_gradients(model, tok, p, "paris", max_rows=0)
    with pytest.raises(QuintetError, match="steps must be >= 1"):
        integrated_gradients(model, tok, p, "paris", steps=0, rule="gauss")
    with pytest.raises(QuintetError, match="weights has 2 entries but alphas has 3"):
        integrated_gradients(model, tok, p, "paris", alphas=[0.2, 0.5, 1.0], weights=[0.5, 0.5])
    with pytest.raises(QuintetError, match="weights needs alphas"):
        integrated_gradients(model, tok, p, "paris", weights=[0.5, 0.5])


def test_causal_prompt_with_inner_mask_is_refused(tmp_path):
    model, tok = tiny_model("gpt2"), tokenizer_for("gpt2", tmp_path)
    with pytest.raises(QuintetError, match="causal LM predicts the next token"):
        integrated_gradients(model, tok, "the [MASK] of france is", "paris", steps=2)
    # a trailing [MASK] is accepted and means the same as none
    a = integrated_gradients(model, tok, "the capital of france is [MASK]", "paris", steps=2)
    b = integrated_gradients(model, tok, "the capital of france is", "paris", steps=2)
    torch.testing.assert_close(a.scores, b.scores)


def test_unknown_architecture_names_supported():
    import transformers as tf

    model = tf.T5ForConditionalGeneration(tf.T5Config(d_model=8, d_ff=8, num_layers=1, num_heads=1, d_kv=4,
                                                      vocab_size=10))
    with pytest.raises(QuintetError, match="unsupported architecture 't5'; supported model types: bert, roberta, electra, distilbert, gpt2"):
        get_adapter(model)


# --- Gauss-Legendre quadrature (same integral, Eq. 3) ----------------------------------------

GAUSS_PROMPTS = [("the capital of france is [MASK] .", "paris"), ("[MASK] is the capital of italy .", "rome"),
                 ("she plays the [MASK] .", "guitar"), ("he was born in [MASK] .", "france"),
                 ("the language of italy is [MASK] .", "italian")]


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 12])
def test_gauss_legendre_integrates_polynomials_of_degree_2m_minus_1_exactly(m):
    nodes, weights = gauss_legendre(m)
    assert nodes.dtype == weights.dtype == torch.float64 and nodes.shape == weights.shape == (m,)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-14)
    assert bool((nodes > 0).all() and (nodes < 1).all() and (weights > 0).all())
    gen = torch.Generator().manual_seed(m)
    coef = torch.randn(2 * m, generator=gen, dtype=torch.float64)      # degree 2m - 1
    poly = sum(c * nodes**j for j, c in enumerate(coef))
    exact = sum(float(c) / (j + 1) for j, c in enumerate(coef))       # ∫_0^1 x^j = 1/(j+1)
    assert float((weights * poly).sum()) == pytest.approx(exact, abs=1e-13)
    # degree 2m is no longer exact: on [0, 1] the error of x^(2m) is (m!)^4 / ((2m+1) ((2m)!)^2) > 0
    miss = 1.0 / (2 * m + 1) - float((weights * nodes ** (2 * m)).sum())
    expected = math.factorial(m) ** 4 / ((2 * m + 1) * math.factorial(2 * m) ** 2)
    assert miss == pytest.approx(expected, rel=1e-5, abs=1e-14)
    # right rule: weights 1/m on k/m; step_grid gives the same nodes as quadrature
    torch.testing.assert_close(quadrature(m, "gauss")[0], step_grid(m, "gauss"))
    assert quadrature(4, "right")[1].tolist() == [0.25] * 4


def test_gauss_rule_matches_weighted_step_by_step_oracle(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    adapter = get_adapter(model)
    p = prompt_for("bert")
    attr = integrated_gradients(model, tok, p, "paris", steps=3, rule="gauss")
    nodes, weights = gauss_legendre(3)
    batch = encode(tok, [p], ["paris"], adapter.causal)
    for layer in range(adapter.n_layers):
        expected = _oracle(adapter, batch, layer, nodes.tolist(), attr.activations[layer], weights.tolist())
        torch.testing.assert_close(attr.scores[layer], expected, rtol=1e-9, atol=1e-12)
    custom = integrated_gradients(model, tok, p, "paris", alphas=nodes, weights=weights)
    torch.testing.assert_close(custom.scores, attr.scores, rtol=0, atol=0)


def _completeness_error(model, tok, prompt, answer, **kw):
    attr = integrated_gradients(model, tok, prompt, answer, with_baseline=True, **kw)
    return (attr.scores.sum(1) - (attr.prob - attr.baseline_probs)).abs()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gauss_5_nodes_beat_right_sum_with_20_steps_on_every_layer(seed, tmp_path):
    # Measured on these 4 seeds x 5 prompts x 3 layers (init 0.3): gauss m=5 is 20-1000x more
    # complete than right m=20 in all 60 cases. On sharper models (init 0.5) it is NOT: there the
    # integrand varies fast and gauss m=5 loses in 25 of 60 cases -- see docs/knowledge.md, "How many Gauss nodes?".
    model, tok = tiny_model("bert", seed=seed), tokenizer_for("bert", tmp_path)
    for prompt, answer in GAUSS_PROMPTS:
        right = _completeness_error(model, tok, prompt, answer, steps=20)
        gauss = _completeness_error(model, tok, prompt, answer, steps=5, rule="gauss")
        assert bool((gauss < right).all()), (prompt, gauss.tolist(), right.tolist())


def test_gauss_converges_as_nodes_grow(tmp_path):
    model, tok = tiny_model("bert"), tokenizer_for("bert", tmp_path)
    errors = [float(sum(_completeness_error(model, tok, p, a, steps=m, rule="gauss").mean() for p, a in GAUSS_PROMPTS))
              for m in (2, 3, 5, 10, 20)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10      # geometric: right m=20 is ~1e-3 on the same prompts
