"""Integrated gradients: completeness, an independent step-by-step oracle, adapters of every
architecture, Riemann rules, gradcheck of the hooked probability."""

from __future__ import annotations

import pytest
import torch
from knowledge_models import prompt_for, tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge import get_adapter, integrated_gradients, step_grid
from quintet.knowledge.prompts import encode

KINDS = ["bert", "roberta", "distilbert", "electra", "gpt2"]


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


def _oracle(adapter, batch, layer, alphas, real):
    """Eq. 4 one step at a time: w̄/m Σ_k ∂P(α_k w̄)/∂w, each step its own forward and backward."""
    total = torch.zeros_like(real)
    for a in alphas:
        x = (a * real).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_prob_with(adapter, batch, layer, x), x)
        total += g
    return real * total / len(alphas)


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
    with pytest.raises(QuintetError, match="unknown Riemann rule 'middle'"):
        integrated_gradients(model, tok, p, "paris", rule="middle")
    with pytest.raises(QuintetError, match="layer 7 does not exist"):
        integrated_gradients(model, tok, p, "paris", layers=[7])


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
