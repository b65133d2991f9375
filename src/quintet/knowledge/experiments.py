"""The paper's experiments on a masked LM and its PARAREL fact bags (Dai et al., 2022, §4-5).

:func:`find_neurons` attributes every prompt of every fact (§3.1), keeps coarse neurons
(t = 0.2), adapts the sharing ratio p per relation so a fact keeps 2–5 neurons on average (raising
t only where p is exhausted, see :func:`~quintet.knowledge.neurons.adapt_refinement`), and
refines (§3.2); it also keeps the activation baseline (same count per fact, top mean activation).
:func:`suppress_amplify` (§4.2, Fig. 4-5), :func:`update_facts` (§5.1) and :func:`erase_relations`
(§5.2) measure the effects.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from quintet.knowledge.adapters import get_adapter
from quintet.knowledge.attribution import integrated_gradients
from quintet.knowledge.editing import (
    answer_probs,
    erase_relation,
    exclusive,
    most_common,
    perplexity,
    relative_change,
    update_fact,
)
from quintet.knowledge.neurons import (
    Neuron,
    activation_baseline,
    adapt_refinement,
    coarse_neurons,
    refine_neurons,
)
from quintet.knowledge.pararel import FactBag
from quintet.knowledge.prompts import answer_id

# Dai et al. (2022), arXiv v1, Fig. 4-5 averages (relative change of the correct probability).
PAPER = {
    "suppress": {"own": -0.3703, "unrelated": -0.0039},
    "amplify": {"own": 0.4642, "unrelated": -0.0015},
}


@dataclass
class FactNeurons:
    bag: FactBag
    coarse: list[list[Neuron]]
    activations: torch.Tensor  # (n_prompts, n_layers, n_neurons)
    scores: torch.Tensor  # (n_prompts, n_layers, n_neurons) attribution scores
    probs: torch.Tensor  # (n_prompts,) gold probability of the unmodified model
    neurons: list[Neuron] = field(default_factory=list)
    baseline: list[Neuron] = field(default_factory=list)


def memorised(model, tokenizer, bags: Sequence[FactBag], min_fraction: float = 1.0) -> list[FactBag]:
    """Facts whose prompts the model answers correctly (at least ``min_fraction`` of them)."""
    prompts = [p for b in bags for p in b.prompts]
    answers = [b.object for b in bags for _ in b.prompts]
    correct = answer_probs(model, tokenizer, prompts, answers, batch_size=256).correct.tolist()
    keep, i = [], 0
    for b in bags:
        n = len(b.prompts)
        if n and sum(correct[i : i + n]) >= min_fraction * n:
            keep.append(b)
        i += n
    return keep


def find_neurons(model, tokenizer, bags: Sequence[FactBag], steps: int = 20, threshold: float = 0.2,
                 band: tuple[float, float] = (2.0, 5.0), log: Callable[[str], None] = print) -> tuple[list[FactNeurons], dict[str, float], float]:
    """Knowledge neurons and activation-baseline neurons of every fact; also ``{"t", "p"}`` per
    relation and the seconds per prompt of the attribution."""
    adapter = get_adapter(model)
    facts: list[FactNeurons] = []
    start, n_prompts = time.perf_counter(), 0
    for k, bag in enumerate(bags):
        coarse, acts, scores, probs = [], [], [], []
        for prompt in bag.prompts:
            attr = integrated_gradients(adapter, tokenizer, prompt, bag.object, steps=steps)
            coarse.append(coarse_neurons(attr.scores, threshold))
            acts.append(attr.activations)
            scores.append(attr.scores)
            probs.append(attr.prob)
            n_prompts += 1
        facts.append(FactNeurons(bag, coarse, torch.stack(acts), torch.stack(scores), torch.tensor(probs)))
        if (k + 1) % 50 == 0:
            log(f"[knowledge] attributed {k + 1}/{len(bags)} facts")
    seconds = (time.perf_counter() - start) / max(1, n_prompts)
    by_relation: dict[str, list[FactNeurons]] = defaultdict(list)
    for f in facts:
        by_relation[f.bag.relation].append(f)
    sharing = {}
    for relation, group in by_relation.items():
        t, p = adapt_refinement([list(f.scores) for f in group], *band, threshold=threshold)
        sharing[relation] = {"t": t, "p": p}
        for f in group:
            if t != threshold:
                f.coarse = [coarse_neurons(s, t) for s in f.scores]
            f.neurons = refine_neurons(f.coarse, p)
            f.baseline = activation_baseline(f.activations, len(f.neurons))
    return facts, sharing, seconds


def _unrelated(facts: Sequence[FactNeurons], relation: str, n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    pool = [(p, f.bag.object) for f in facts if f.bag.relation != relation for p in f.bag.prompts]
    pick = rng.sample(pool, min(n, len(pool)))
    return [p for p, _ in pick], [a for _, a in pick]


def suppress_amplify(model, tokenizer, facts: Sequence[FactNeurons], unrelated_prompts: int = 10,
                     seed: int = 0) -> dict:
    """Relative change of the correct probability when a fact's neurons are suppressed (×0) or
    amplified (×2): on its own prompts, its held-out-template prompts, and unrelated facts'
    prompts; for knowledge neurons and the activation baseline. Averaged per relation, then over
    relations (the paper's Fig. 4-5 average)."""
    rng = random.Random(seed)
    per_rel: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for f in facts:
        if not f.neurons:
            continue
        own = (list(f.bag.prompts), [f.bag.object] * len(f.bag.prompts))
        held = (list(f.bag.heldout), [f.bag.object] * len(f.bag.heldout))
        other = _unrelated(facts, f.bag.relation, unrelated_prompts, rng)
        for name, (prompts, answers) in {"own": own, "heldout": held, "unrelated": other}.items():
            if not prompts:
                continue
            base = answer_probs(model, tokenizer, prompts, answers).prob
            for method, neurons in (("kn", f.neurons), ("baseline", f.baseline)):
                for mode, factor in (("suppress", 0.0), ("amplify", 2.0)):
                    after = answer_probs(model, tokenizer, prompts, answers, neurons, factor).prob
                    per_rel[f.bag.relation][f"{method}/{mode}/{name}"].append(relative_change(base, after))
    keys = sorted({k for r in per_rel.values() for k in r})
    relation_means = {r: {k: sum(v[k]) / len(v[k]) for k in keys if v.get(k)} for r, v in per_rel.items()}
    overall = {k: sum(m[k] for m in relation_means.values() if k in m) / max(1, sum(k in m for m in relation_means.values()))
               for k in keys}
    return {"overall": overall, "per_relation": relation_means}


def update_facts(model, tokenizer, facts: Sequence[FactNeurons], per_relation: int = 5, others: int = 30,
                 lambda1: float = 1.0, lambda2: float = 8.0, max_share: float = 0.1, seed: int = 0,
                 scales: Sequence[str] = ("embedding", "slot")) -> dict:
    """§5.1: change ``(s, r, t)`` to ``(s, r, t')`` (``t'`` another object of the same relation) by
    editing the fact's exclusive knowledge neurons, once per ``scale`` of :func:`update_fact`.
    Facts left with no exclusive neuron are skipped (and counted), and another fact of the relation
    is drawn, as in the authors' script.

    Success (the paper's Table 4): the top-1 prediction on the fact's prompts becomes ``t'``;
    reported per prompt (the authors' script draws one random prompt per fact, so this is its
    expectation) and per fact (a majority of its prompts). ``old changed``: prompts whose top-1 is
    no longer ``t``. Change rate: other facts' top-1 predictions that change, same relation
    (intra) and other relations (inter); Δ perplexity of their gold answers."""
    rng = random.Random(seed)
    by_rel: dict[str, list[FactNeurons]] = defaultdict(list)
    for f in facts:
        by_rel[f.bag.relation].append(f)
    rows: dict[str, list[dict]] = {scale: [] for scale in scales}
    skipped = 0
    for relation, group in by_rel.items():
        objects = sorted({f.bag.object for f in group})
        candidates = [f for f in group if len(objects) > 1]
        done = 0
        for f in rng.sample(candidates, len(candidates)):
            if done == per_relation:
                break
            new = rng.choice([o for o in objects if o != f.bag.object])
            neurons = exclusive(f.neurons, [g.neurons for g in group if g is not f], max_share)
            if not neurons:  # the authors' script skips such facts ('no_kn') and draws another
                skipped += 1
                continue
            done += 1
            intra = [(p, g.bag.object) for g in group if g is not f for p in g.bag.prompts]
            inter = [(p, g.bag.object) for r, gs in by_rel.items() if r != relation for g in gs for p in g.bag.prompts]
            intra, inter = rng.sample(intra, min(others, len(intra))), rng.sample(inter, min(others, len(inter)))
            own = list(f.bag.prompts)

            def measure(own=own, new=new, intra=intra, inter=inter):
                s_new = answer_probs(model, tokenizer, own, [new] * len(own))
                s_in = answer_probs(model, tokenizer, [p for p, _ in intra], [a for _, a in intra]) if intra else None
                s_out = answer_probs(model, tokenizer, [p for p, _ in inter], [a for _, a in inter])
                return s_new, s_in, s_out

            before = measure()
            old_id, new_id = answer_id(tokenizer, f.bag.object), answer_id(tokenizer, new)
            for scale in scales:
                with update_fact(model, neurons, old_id, new_id, lambda1, lambda2, scale=scale):
                    after = measure()
                hit = float(after[0].correct.float().mean())
                rows[scale].append({
                    "relation": relation, "n_neurons": len(neurons), "prompt_success": hit,
                    "fact_success": float(hit > 0.5),
                    "old_changed": float((after[0].argmax != old_id).float().mean()),
                    "p_new_before": float(before[0].prob.mean()), "p_new_after": float(after[0].prob.mean()),
                    "change_intra": float((before[1].argmax != after[1].argmax).float().mean()) if intra else 0.0,
                    "change_inter": float((before[2].argmax != after[2].argmax).float().mean()),
                    "d_ppl_intra": perplexity(after[1].logprob) - perplexity(before[1].logprob) if intra else 0.0,
                    "d_ppl_inter": perplexity(after[2].logprob) - perplexity(before[2].logprob),
                })
    keys = ("n_neurons", "prompt_success", "fact_success", "old_changed", "p_new_before", "p_new_after",
            "change_intra", "change_inter", "d_ppl_intra", "d_ppl_inter")
    out = {}
    for scale, rs in rows.items():
        mean = {k: sum(r[k] for r in rs) / max(1, len(rs)) for k in keys}
        mean["facts"] = len(rs)
        mean["skipped_without_neurons"] = skipped
        out[scale] = {"mean": mean, "rows": rs}
    return out


def erase_relations(model, tokenizer, facts: Sequence[FactNeurons], relations: Sequence[str] | None = None,
                    top: int = 20, others: int = 200, seed: int = 0) -> dict:
    """§5.2: zero the value slots of each relation's ``top`` most common knowledge neurons;
    perplexity and accuracy of the relation's prompts and of other relations' prompts, before and
    after. A control erases as many random neurons."""
    rng = random.Random(seed)
    adapter = get_adapter(model)
    by_rel: dict[str, list[FactNeurons]] = defaultdict(list)
    for f in facts:
        by_rel[f.bag.relation].append(f)
    rows = []
    for relation in relations or sorted(by_rel):
        group = by_rel[relation]
        neurons = most_common([f.neurons for f in group], top)
        if not neurons:
            continue
        own = [(p, f.bag.object) for f in group for p in f.bag.prompts]
        other = [(p, f.bag.object) for r, gs in by_rel.items() if r != relation for f in gs for p in f.bag.prompts]
        other = rng.sample(other, min(others, len(other)))
        random_neurons = [(rng.randrange(adapter.n_layers), rng.randrange(adapter.n_neurons)) for _ in neurons]

        def measure(pairs):
            s = answer_probs(model, tokenizer, [p for p, _ in pairs], [a for _, a in pairs])
            return perplexity(s.logprob), float(s.correct.float().mean())

        row = {"relation": relation, "n_neurons": len(neurons)}
        row["ppl_before"], row["acc_before"] = measure(own)
        row["other_ppl_before"], row["other_acc_before"] = measure(other)
        with erase_relation(model, neurons):
            row["ppl_after"], row["acc_after"] = measure(own)
            row["other_ppl_after"], row["other_acc_after"] = measure(other)
        with erase_relation(model, random_neurons):
            row["ppl_random"], row["acc_random"] = measure(own)
        rows.append(row)
    return {"rows": rows}
