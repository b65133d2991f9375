"""A 30-second tour on built-in synthetic facts: made-up countries and their capitals."""

from __future__ import annotations

import random
import time

import torch


def _world(n: int = 16, seed: int = 0):
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ru", "te", "zo", "pa", "ne", "vi", "su"]
    names = sorted({rng.choice(syll) + rng.choice(syll) + rng.choice(syll) for _ in range(4 * n)})
    countries, capitals = names[:n], names[n : 2 * n]
    templates = ["the capital of [X] is [Y] .", "[X] has its capital in [Y] .", "[Y] is the capital city of [X] .",
                 "in [X] the seat of government is [Y] ."]
    return list(zip(countries, capitals)), templates


def run_demo(run) -> str:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from quintet.knowledge import (
        answer_probs,
        coarse_neurons,
        integrated_gradients,
        refine_neurons,
        relative_change,
    )
    from quintet.knowledge.plots import heatmap

    torch.manual_seed(0)
    start = time.perf_counter()
    facts, templates = _world()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + sorted(
        {w for t in templates for w in t.split() if not w.startswith("[")} | {w for f in facts for w in f})
    (run.path / "knowledge_demo_vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(str(run.path / "knowledge_demo_vocab.txt"), do_lower_case=True)
    bags = {c: [t.replace("[X]", c).replace("[Y]", "[MASK]") for t in templates] for c, _ in facts}
    prompts = [p for c, _ in facts for p in bags[c]]
    answers = [a for c, a in facts for _ in bags[c]]
    model = BertForMaskedLM(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0))
    from quintet.knowledge.prompts import encode

    batch = encode(tok, prompts, answers, causal=False)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    rows = torch.arange(len(batch))
    for _ in range(100):
        hidden = model.bert(**batch.inputs).last_hidden_state[rows, batch.positions]
        loss = torch.nn.functional.cross_entropy(model.cls(hidden), batch.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    acc = float(answer_probs(model, tok, prompts, answers).correct.float().mean())
    country, capital = facts[0]
    attr = integrated_gradients(model, tok, bags[country][0], capital, steps=20, with_baseline=True)
    gap = float((attr.prob - attr.baseline_probs).sum())
    coarse = [coarse_neurons(integrated_gradients(model, tok, p, capital, steps=20).scores) for p in bags[country]]
    neurons = refine_neurons(coarse, 0.5)
    base = answer_probs(model, tok, bags[country], [capital] * 4).prob
    supp = relative_change(base, answer_probs(model, tok, bags[country], [capital] * 4, neurons, 0.0).prob)
    others = [p for c, _ in facts[1:] for p in bags[c]][:24]
    other_ans = [a for c, a in facts[1:] for _ in bags[c]][:24]
    base_o = answer_probs(model, tok, others, other_ans).prob
    supp_o = relative_change(base_o, answer_probs(model, tok, others, other_ans, neurons, 0.0).prob)
    run.save_figure(heatmap(attr.scores, f"{bags[country][0]} -> {capital}"), "knowledge_demo_heatmap.png")
    seconds = time.perf_counter() - start
    run.log_metrics({"knowledge": {"train_accuracy": acc, "neurons": len(neurons), "suppress_own": supp,
                                   "suppress_unrelated": supp_o, "seconds": round(seconds, 1)}})
    return f"""## knowledge

A 2-layer BERT memorised {len(facts)} made-up capitals ({len(prompts)} prompts, top-1 accuracy {100 * acc:.0f} %).
Integrated gradients on "{bags[country][0]}" → `{capital}`: completeness Σ attributions = {float(attr.scores.sum()):.4f}
vs Σ_l [P(real) − P(0)] = {gap:.4f}. Refining over the fact's 4 paraphrases left {len(neurons)} knowledge neurons;
suppressing them changed P({capital}) by {100 * supp:+.1f} % on its own prompts and by {100 * supp_o:+.2f} % on other facts.
({seconds:.1f} s)

![attribution heatmap](knowledge_demo_heatmap.png)
"""
