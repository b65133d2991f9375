"""Gated (SwiGLU) FFNs of the Llama family: the hooked activation is act(gate(x)) · up(x), the value
slots are the columns of down_proj; fact updates deduplicate neurons and check token ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from knowledge_models import GATED, prompt_for, tiny_model, tokenizer_for

from quintet.core.errors import QuintetError
from quintet.knowledge import answer_probs, get_adapter, update_fact
from quintet.knowledge.prompts import encode


@pytest.mark.parametrize("kind", sorted(GATED))
def test_hooked_activation_is_the_gated_product_and_slots_are_down_proj_columns(kind, tmp_path):
    model, tok = tiny_model(kind), tokenizer_for(kind, tmp_path)
    adapter = get_adapter(model)
    assert adapter.causal and adapter.site == "input" and adapter.n_neurons == 24 and adapter.n_layers == 2
    batch = encode(tok, [prompt_for(kind)], ["paris"], causal=True)
    seen, hooked, handles = {}, {}, []
    for layer, block in enumerate(adapter.blocks):
        # a hand-made hook on the MLP's input, independent of the adapter
        handles.append(block.mlp.register_forward_hook(lambda m, i, _o, layer=layer: seen.__setitem__(layer, i[0])))
        handles.append(adapter.hook_activations(layer, lambda a, layer=layer: hooked.__setitem__(layer, a)))
    with torch.no_grad():
        model(**batch.inputs)
    for h in handles:
        h.remove()
    for layer, block in enumerate(adapter.blocks):
        mlp = block.mlp
        expected = mlp.act_fn(mlp.gate_proj(seen[layer])) * mlp.up_proj(seen[layer])
        torch.testing.assert_close(hooked[layer], expected, rtol=0, atol=0)
        slots = adapter.value_slots(layer)
        assert slots.shape == (24, 16) and slots.data_ptr() == mlp.down_proj.weight.data_ptr()
        torch.testing.assert_close(slots[5], mlp.down_proj.weight[:, 5])


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_suppressing_a_neuron_equals_subtracting_its_value_slot(kind, tmp_path):
    # × 0 on neuron i at the target removes activation_i · v_i from the FFN output there: the same
    # logits as zeroing v_i when the target is the only position that changes (the last one)
    model, tok = tiny_model(kind), tokenizer_for(kind, tmp_path)
    adapter = get_adapter(model)
    prompts, answers = [prompt_for(kind)], ["paris"]
    top = adapter.n_layers - 1
    suppressed = answer_probs(model, tok, prompts, answers, [(top, 3), (top, 7)], factor=0.0).prob
    with torch.no_grad():
        saved = adapter.value_slots(top)[[3, 7]].clone()
        adapter.value_slots(top)[[3, 7]] = 0.0
        zeroed = answer_probs(model, tok, prompts, answers).prob
        adapter.value_slots(top)[[3, 7]] = saved
    torch.testing.assert_close(suppressed, zeroed, rtol=1e-12, atol=1e-15)
    assert float((answer_probs(model, tok, prompts, answers).prob - suppressed).abs().max()) > 1e-6


def test_update_fact_edits_a_repeated_neuron_once_and_checks_ids(tmp_path):
    model = tiny_model("llama")
    adapter = get_adapter(model)
    before = adapter.value_slots(1).detach().clone()
    emb = adapter.word_embeddings().detach()
    with update_fact(model, [(1, 4), (1, 4), (1, 9)], 10, 11, lambda1=1.0, lambda2=8.0):
        after = adapter.value_slots(1).detach().clone()
    delta = -emb[10] + 8.0 * emb[11]
    torch.testing.assert_close(after[4], before[4] + delta)
    torch.testing.assert_close(after[9], before[9] + delta)
    torch.testing.assert_close(adapter.value_slots(1).detach(), before, rtol=0, atol=0)   # restored
    # integers of other kinds are token ids too
    with update_fact(model, [(1, 4)], np.int64(10), torch.tensor(11)):
        torch.testing.assert_close(adapter.value_slots(1)[4].detach(), before[4] + delta)
    vocab = emb.shape[0]
    for bad, name in ((-1, "old_id -1"), (vocab, f"old_id {vocab}"), (2.0, "old_id 2.0"), (True, "old_id True")):
        with pytest.raises(QuintetError, match=f"{name} is not a token id; expected an integer in 0..{vocab - 1}"):
            with update_fact(model, [(1, 4)], bad, 11):
                pass
    with pytest.raises(QuintetError, match="new_id -3 is not a token id"):
        with update_fact(model, [(1, 4)], 10, -3):
            pass
    torch.testing.assert_close(adapter.value_slots(1).detach(), before, rtol=0, atol=0)
