"""The paper's experiments on a masked LM and its PARAREL fact bags (Dai et al., 2022, §4-5).

:func:`find_neurons` attributes every prompt of every fact (§3.1), keeps coarse neurons
(t = 0.2), adapts the sharing ratio p per relation so a fact keeps 2–5 neurons on average (raising
t only where p is exhausted, see :func:`~quintet.knowledge.neurons.adapt_refinement`), and
refines (§3.2); it also keeps the activation baseline (same count per fact, top mean activation).
:func:`suppress_amplify` (§4.2, Fig. 4-5), :func:`update_facts` (§5.1) and :func:`erase_relations`
(§5.2) measure the effects.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from quintet.core.io import load_tensors, save_tensors
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
from quintet.knowledge.specificity import drop_inter_relation

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
    baseline_probs: torch.Tensor | None = None  # (n_prompts, n_layers) P(0) per layer, if computed


def memorised(model, tokenizer, bags: Sequence[FactBag], min_fraction: float = 1.0,
              min_prob: float | None = None) -> list[FactBag]:
    """Facts whose prompts the model answers (at least ``min_fraction`` of them): the gold object
    is the top-1 prediction or, with ``min_prob``, has at least that probability."""
    prompts = [p for b in bags for p in b.prompts]
    answers = [b.object for b in bags for _ in b.prompts]
    if not prompts:
        return []
    # batches of prompts of similar length waste little on padding; results go back in order
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    scores = answer_probs(model, tokenizer, [prompts[i] for i in order], [answers[i] for i in order], batch_size=256)
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))
    correct, prob = scores.correct[back], scores.prob[back]
    hits = correct if min_prob is None else correct | (prob >= min_prob)
    keep, i = [], 0
    for b in bags:
        n = len(b.prompts)
        if n and int(hits[i : i + n].sum()) >= min_fraction * n:
            keep.append(b)
        i += n
    return keep


def known_facts(model, tokenizer, bags: Sequence[FactBag], min_fraction: float = 0.5,
                min_prob: float | None = None) -> list[FactBag]:
    """:func:`memorised` in two passes: a screen on each fact's first prompt (a fact that fails it
    can still pass on its other prompts only when ``min_fraction`` allows a miss, so the screen
    is exact for ``min_fraction = 1`` and a cheap approximation below), then all prompts of the
    facts that passed it."""
    firsts = [replace(b, prompts=b.prompts[:1]) for b in bags]
    passed = {id(f) for f in memorised(model, tokenizer, firsts, 1.0, min_prob)}
    screened = [b for b, f in zip(bags, firsts) if id(f) in passed]
    return memorised(model, tokenizer, screened, min_fraction, min_prob)


def _attribute_bag(adapter, tokenizer, bag: FactBag, cache: Path | None, **kwargs) -> tuple[dict[str, torch.Tensor], bool]:
    """Scores, activations, gold probabilities (and ``P(0)`` per layer) of every prompt of ``bag``;
    read from / written to ``cache`` (one safetensors file per fact and setting) when given. The
    flag says whether they were computed (``False``: read from the cache)."""
    key = hashlib.sha1(json.dumps([bag.relation, bag.subject, bag.object, bag.prompts,
                                   sorted(kwargs.items())]).encode()).hexdigest()[:16]
    file = cache / f"{bag.relation}-{key}.safetensors" if cache is not None else None
    if file is not None and file.is_file():
        return load_tensors(file), False
    attrs = [integrated_gradients(adapter, tokenizer, prompt, bag.object, **kwargs) for prompt in bag.prompts]
    out = {"scores": torch.stack([a.scores for a in attrs]), "activations": torch.stack([a.activations for a in attrs]),
           "probs": torch.tensor([a.prob for a in attrs]), "p0": torch.stack([a.baseline_probs for a in attrs])}
    if file is not None:
        save_tensors(file, out)
    return out, True


def searched(scores: torch.Tensor, exclude_layers: Sequence[int]) -> torch.Tensor:
    """``scores`` ``(n_layers, n_neurons)`` with the rows of ``exclude_layers`` set to −inf."""
    if not exclude_layers:
        return scores
    out = scores.clone()
    out[list(exclude_layers)] = float("-inf")
    return out


def find_neurons(model, tokenizer, bags: Sequence[FactBag], steps: int = 20, threshold: float = 0.2,
                 band: tuple[float, float] = (2.0, 5.0), log: Callable[[str], None] = print, rule: str = "right",
                 with_baseline: bool = False, cache: str | os.PathLike | None = None,
                 exclude_layers: Sequence[int] = (), specific: bool = False,
                 ) -> tuple[list[FactNeurons], dict[str, float], float]:
    """Knowledge neurons and activation-baseline neurons of every fact; also ``{"t", "p"}`` per
    relation and the seconds per prompt of the attribution (prompts attributed in this call).

    ``rule``/``steps``: the quadrature of :func:`integrated_gradients`; ``with_baseline`` keeps
    ``P(0)`` per layer for the completeness check; ``cache``: a folder with one file per fact, so
    an interrupted run resumes where it stopped. ``exclude_layers``: layers attributed (their
    scores are kept in ``FactNeurons.scores``) but left out of the search for coarse neurons, so
    the threshold ``t · max`` is taken over the other layers. ``specific``: after the paper's
    refining, drop the neurons that are knowledge neurons of facts of two or more relations
    (:func:`~quintet.knowledge.specificity.drop_inter_relation`; not a step of the paper)."""
    adapter = get_adapter(model)
    folder = Path(cache) if cache is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    facts: list[FactNeurons] = []
    seconds, n_prompts = 0.0, 0
    for k, bag in enumerate(bags):
        start = time.perf_counter()
        out, computed = _attribute_bag(adapter, tokenizer, bag, folder, steps=steps, rule=rule,
                                       with_baseline=with_baseline)
        if computed:
            seconds, n_prompts = seconds + time.perf_counter() - start, n_prompts + len(bag.prompts)
        coarse = [coarse_neurons(searched(s, exclude_layers), threshold) for s in out["scores"]]
        facts.append(FactNeurons(bag, coarse, out["activations"], out["scores"], out["probs"],
                                 baseline_probs=out["p0"] if with_baseline else None))
        if (k + 1) % 10 == 0 or k + 1 == len(bags):
            log(f"[knowledge] attributed {k + 1}/{len(bags)} facts")
    by_relation: dict[str, list[FactNeurons]] = defaultdict(list)
    for f in facts:
        by_relation[f.bag.relation].append(f)
    sharing = {}
    for relation, group in by_relation.items():
        t, p = adapt_refinement([[searched(s, exclude_layers) for s in f.scores] for f in group], *band,
                                threshold=threshold)
        sharing[relation] = {"t": t, "p": p}
        for f in group:
            if t != threshold:
                f.coarse = [coarse_neurons(searched(s, exclude_layers), t) for s in f.scores]
            f.neurons = refine_neurons(f.coarse, p)
    kept = drop_inter_relation([f.neurons for f in facts], [f.bag.relation for f in facts]) if specific else \
        [f.neurons for f in facts]
    return with_neurons(facts, kept), sharing, (seconds / n_prompts if n_prompts else float("nan"))


def with_neurons(facts: Sequence[FactNeurons], neurons: Sequence[Sequence[Neuron]]) -> list[FactNeurons]:
    """Copies of ``facts`` with other knowledge neurons (e.g. a refinement's), each with its
    activation baseline re-drawn to the new count."""
    return [replace(f, neurons=[tuple(n) for n in kept], baseline=activation_baseline(f.activations, len(kept)))
            for f, kept in zip(facts, neurons, strict=True)]


def random_neurons(n_layers: int, n_neurons: int, k: int, rng: random.Random) -> list[Neuron]:
    """``k`` distinct neurons drawn uniformly from ``n_layers × n_neurons`` (sorted)."""
    return sorted(divmod(i, n_neurons) for i in rng.sample(range(n_layers * n_neurons), k))


def unrelated_pairs(bags: Sequence[FactBag], relation: str, n: int,
                    rng: random.Random) -> tuple[list[str], list[str]]:
    """Up to ``n`` prompts (and their answers) drawn from the facts of relations other than ``relation``."""
    pool = [(p, b.object) for b in bags if b.relation != relation for p in b.prompts]
    pick = rng.sample(pool, min(n, len(pool)))
    return [p for p, _ in pick], [a for _, a in pick]


def suppress_amplify(model, tokenizer, facts: Sequence[FactNeurons], unrelated_prompts: int = 10,
                     seed: int = 0, methods: Sequence[str] = ("kn", "baseline", "random")) -> dict:
    """Relative change of the correct probability when a fact's neurons are suppressed (×0) or
    amplified (×2): on its own prompts, its held-out-template prompts, and unrelated facts'
    prompts; for knowledge neurons, the activation baseline and as many random neurons (keys
    ``kn``, ``baseline``, ``random``; ``methods`` picks among them). Averaged per relation, then
    over relations (the paper's Fig. 4-5 average; ``spread``: the mean over relations of the
    magnitude of each relation's average, which changes of opposite sign do not cancel in;
    ``facts``: how many facts have neurons and so enter the averages). The unrelated prompts of the ``i``-th fact depend
    only on ``seed`` and ``i``, so runs that differ only in the neurons use the same prompts."""
    adapter = get_adapter(model)
    per_rel: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bags = [f.bag for f in facts]
    for i, f in enumerate(facts):
        rng = random.Random(seed * 1_000_003 + i)
        other = unrelated_pairs(bags, f.bag.relation, unrelated_prompts, rng)
        if not f.neurons:
            continue
        own = (list(f.bag.prompts), [f.bag.object] * len(f.bag.prompts))
        held = (list(f.bag.heldout), [f.bag.object] * len(f.bag.heldout))
        chance = random_neurons(adapter.n_layers, adapter.n_neurons, len(f.neurons), rng)
        chosen = [(m, n) for m, n in (("kn", f.neurons), ("baseline", f.baseline), ("random", chance)) if m in methods]
        sets = {name: pair for name, pair in {"own": own, "heldout": held, "unrelated": other}.items() if pair[0]}
        prompts = [p for ps, _ in sets.values() for p in ps]   # one batch for the three sets
        answers = [a for _, ans in sets.values() for a in ans]
        bounds, start = {}, 0
        for name, (ps, _) in sets.items():
            bounds[name], start = slice(start, start + len(ps)), start + len(ps)
        base = answer_probs(model, tokenizer, prompts, answers).prob
        for method, neurons in chosen:
            for mode, factor in (("suppress", 0.0), ("amplify", 2.0)):
                after = answer_probs(model, tokenizer, prompts, answers, neurons, factor).prob
                for name, part in bounds.items():
                    per_rel[f.bag.relation][f"{method}/{mode}/{name}"].append(relative_change(base[part], after[part]))
    keys = sorted({k for r in per_rel.values() for k in r})
    relation_means = {r: {k: sum(v[k]) / len(v[k]) for k in keys if v.get(k)} for r, v in per_rel.items()}
    magnitudes = {r: {k: abs(v) for k, v in m.items()} for r, m in relation_means.items()}
    return {"overall": _mean_over_relations(relation_means, keys), "per_relation": relation_means,
            "spread": _mean_over_relations(magnitudes, keys), "facts": sum(bool(f.neurons) for f in facts),
            "interval": relation_bootstrap(relation_means, keys, seed=seed)}


def _mean_over_relations(relation_means: dict[str, dict[str, float]], keys) -> dict[str, float]:
    return {k: sum(m[k] for m in relation_means.values() if k in m) / max(1, sum(k in m for m in relation_means.values()))
            for k in keys}


def relation_bootstrap(relation_means: dict[str, dict[str, float]], keys, n: int = 2000, level: float = 0.95,
                       seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the mean over relations (relations resampled with
    replacement, ``n`` times): how far the average of :func:`suppress_amplify` could move with
    another draw of relations of the same size."""
    rng = random.Random(seed)
    names = sorted(relation_means)
    if not names:
        return {}
    draws = [_mean_over_relations({f"{i}": relation_means[r] for i, r in enumerate(rng.choices(names, k=len(names)))}, keys)
             for _ in range(n)]
    lo, hi = int((1 - level) / 2 * n), int((1 + level) / 2 * n) - 1
    out = {}
    for k in keys:
        values = sorted(d[k] for d in draws)
        out[k] = (values[lo], values[hi])
    return out


def update_facts(model, tokenizer, facts: Sequence[FactNeurons], per_relation: int = 5, others: int = 30,
                 lambda1: float = 1.0, lambda2: float = 8.0, max_share: float = 0.1, seed: int = 0,
                 scales: Sequence[str] = ("embedding", "slot"), objects: dict[str, Sequence[str]] | None = None) -> dict:
    """§5.1: change ``(s, r, t)`` to ``(s, r, t')`` (``t'`` another object of the same relation) by
    editing the fact's exclusive knowledge neurons, once per ``scale`` of :func:`update_fact`.
    ``objects``: per relation, the candidates for ``t'`` (default: the objects of ``facts``).
    Facts left with no exclusive neuron are skipped (and counted), and another fact of the relation
    is drawn, as in the authors' script.

    Success (the paper's Table 4): the top-1 prediction on the fact's prompts becomes ``t'``;
    reported per prompt (the authors' script draws one random prompt per fact, so this is its
    expectation) and per fact (a majority of its prompts). ``old changed``: prompts whose top-1 is
    no longer ``t``. Change rate: other facts' top-1 predictions that change, same relation
    (intra) and other relations (inter); Δ perplexity of their gold answers."""
    rng = random.Random(seed)
    causal = get_adapter(model).causal
    by_rel: dict[str, list[FactNeurons]] = defaultdict(list)
    for f in facts:
        by_rel[f.bag.relation].append(f)
    rows: dict[str, list[dict]] = {scale: [] for scale in scales}
    skipped = 0
    for relation, group in by_rel.items():
        pool = objects.get(relation, ()) if objects is not None else ()
        choices = sorted({f.bag.object for f in group} | set(pool))
        candidates = [f for f in group if len(choices) > 1]
        done = 0
        for f in rng.sample(candidates, len(candidates)):
            if done == per_relation:
                break
            new = rng.choice([o for o in choices if o != f.bag.object])
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
            old_id, new_id = answer_id(tokenizer, f.bag.object, causal), answer_id(tokenizer, new, causal)
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
        chance = random_neurons(adapter.n_layers, adapter.n_neurons, len(neurons), rng)

        def measure(pairs):
            s = answer_probs(model, tokenizer, [p for p, _ in pairs], [a for _, a in pairs])
            return perplexity(s.logprob), float(s.correct.float().mean())

        row = {"relation": relation, "n_neurons": len(neurons)}
        row["ppl_before"], row["acc_before"] = measure(own)
        row["other_ppl_before"], row["other_acc_before"] = measure(other)
        with erase_relation(model, neurons):
            row["ppl_after"], row["acc_after"] = measure(own)
            row["other_ppl_after"], row["other_acc_after"] = measure(other)
        with erase_relation(model, chance):
            row["ppl_random"], row["acc_random"] = measure(own)
        rows.append(row)
    return {"rows": rows}
