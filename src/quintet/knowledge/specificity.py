"""How specific knowledge neurons are to their fact, and a refinement that keeps only specific ones.

Dai et al. (2022, §4, "knowledge neurons of different relations") observe that the knowledge
neurons of facts of the *same* relation overlap far more than those of facts of *different*
relations. :func:`overlap` measures both means over the analysed facts. A neuron that is a
knowledge neuron of facts of two or more relations is then not specific to a fact: on a causal LM
such neurons sit mostly in the last block and push whole classes of answer tokens (country names,
company names), so suppressing them lowers the probability of other relations' answers too.
:func:`drop_inter_relation` removes them after the paper's refining step, and
:func:`check_on_heldout_facts` keeps only the neurons that, suppressed alone, leave facts outside
the analysis (of other relations) nearly unchanged. Both are options of this library, not steps of
the paper.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

import torch

from quintet.core.errors import QuintetError
from quintet.knowledge.neurons import Neuron
from quintet.knowledge.pararel import FactBag


def _check(neurons: Sequence[Sequence[Neuron]], relations: Sequence[str]) -> None:
    if len(neurons) != len(relations):
        raise QuintetError(f"need one relation per fact, got {len(relations)} relations for {len(neurons)} facts")


def relations_of(neurons: Sequence[Sequence[Neuron]], relations: Sequence[str]) -> dict[Neuron, set[str]]:
    """Per neuron, the relations of the facts it is a knowledge neuron of."""
    _check(neurons, relations)
    out: dict[Neuron, set[str]] = defaultdict(set)
    for fact, relation in zip(neurons, relations):
        for n in fact:
            out[tuple(n)].add(relation)
    return dict(out)


def inter_relation_neurons(neurons: Sequence[Sequence[Neuron]], relations: Sequence[str]) -> set[Neuron]:
    """Neurons that are knowledge neurons of facts of at least two relations."""
    return {n for n, rels in relations_of(neurons, relations).items() if len(rels) > 1}


def drop_inter_relation(neurons: Sequence[Sequence[Neuron]], relations: Sequence[str]) -> list[list[Neuron]]:
    """Each fact's neurons without :func:`inter_relation_neurons` (order kept)."""
    shared = inter_relation_neurons(neurons, relations)
    return [[tuple(n) for n in fact if tuple(n) not in shared] for fact in neurons]


def overlap(neurons: Sequence[Sequence[Neuron]], relations: Sequence[str]) -> dict[str, float]:
    """Mean number of knowledge neurons two facts share, over pairs of the same relation (``intra``)
    and of different relations (``inter``), with the pair counts."""
    _check(neurons, relations)
    sums = {"intra": 0, "inter": 0}
    pairs = {"intra": 0, "inter": 0}
    sets = [set(map(tuple, fact)) for fact in neurons]
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            kind = "intra" if relations[i] == relations[j] else "inter"
            sums[kind] += len(sets[i] & sets[j])
            pairs[kind] += 1
    return {"intra": sums["intra"] / pairs["intra"] if pairs["intra"] else float("nan"),
            "inter": sums["inter"] / pairs["inter"] if pairs["inter"] else float("nan"),
            "intra_pairs": pairs["intra"], "inter_pairs": pairs["inter"]}


def suppressed_alone(model, tokenizer, neurons: Sequence[Neuron], prompts: Sequence[str],
                     answers: Sequence[str]) -> list[torch.Tensor]:
    """Per neuron: the per-prompt relative change ``(after − before) / before`` of the correct
    probability when that neuron alone is suppressed (×0) at the last position."""
    from quintet.knowledge.editing import answer_probs, relative_changes

    base = answer_probs(model, tokenizer, prompts, answers).prob
    return [relative_changes(base, answer_probs(model, tokenizer, prompts, answers, [tuple(n)], 0.0).prob)
            for n in neurons]


def unrelated_effect_per_neuron(model, tokenizer, facts, unrelated_prompts: int = 10, seed: int = 0) -> list[dict]:
    """Each knowledge neuron of each fact suppressed *alone* on up to ``unrelated_prompts`` prompts of
    other relations' facts (the prompts :func:`~quintet.knowledge.experiments.suppress_amplify`
    uses for the fact): per neuron, its fact's relation and object, ``layer``, ``index``, the
    relative change of the correct probability and whether it is an inter-relation neuron."""
    from quintet.knowledge.experiments import unrelated_pairs

    shared = inter_relation_neurons([f.neurons for f in facts], [f.bag.relation for f in facts])
    bags = [f.bag for f in facts]
    rows = []
    for i, f in enumerate(facts):
        prompts, answers = unrelated_pairs(bags, f.bag.relation, unrelated_prompts, random.Random(seed * 1_000_003 + i))
        if not f.neurons or not prompts:
            continue
        for (layer, index), change in zip(f.neurons, suppressed_alone(model, tokenizer, f.neurons, prompts, answers)):
            rows.append({"relation": f.bag.relation, "object": f.bag.object, "layer": layer, "index": index,
                         "change": float(change.mean()), "inter_relation": (layer, index) in shared})
    return rows


def check_on_heldout_facts(model, tokenizer, neurons: Sequence[Sequence[Neuron]], relations: Sequence[str],
                           heldout: Sequence[FactBag], tolerance: float = 0.02, prompts: int = 30,
                           seed: int = 0) -> tuple[list[list[Neuron]], list[dict]]:
    """Keep a fact's knowledge neuron only if suppressing it alone moves the correct probability of
    other facts by less than ``tolerance`` (mean absolute relative change over up to ``prompts``
    prompts of the ``heldout`` facts whose relation differs from the fact's). ``heldout`` should be
    facts outside the analysis, so that the facts the effects are measured on later never decided
    which neurons were kept. Returns each fact's kept neurons (order kept) and one row per checked
    neuron: relation, layer, index, ``abs_change``, ``change`` (signed mean), ``kept``."""
    from quintet.knowledge.experiments import unrelated_pairs

    _check(neurons, relations)
    if not tolerance > 0:
        raise QuintetError(f"tolerance must be > 0, got {tolerance}")
    if prompts < 1:
        raise QuintetError(f"prompts must be >= 1, got {prompts}")
    kept_all, rows = [], []
    for i, (fact, relation) in enumerate(zip(neurons, relations)):
        pairs = unrelated_pairs(heldout, relation, prompts, random.Random(seed * 1_000_003 + i))
        if fact and not pairs[0]:
            raise QuintetError(f"no held-out facts of a relation other than {relation} to check neurons on")
        kept = []
        for (layer, index), change in zip(fact, suppressed_alone(model, tokenizer, fact, *pairs) if fact else []):
            spread = float(change.abs().mean())
            rows.append({"relation": relation, "layer": layer, "index": index, "abs_change": spread,
                         "change": float(change.mean()), "kept": spread < tolerance})
            if spread < tolerance:
                kept.append((layer, index))
        kept_all.append(kept)
    return kept_all, rows


def summarise_effects(rows: Sequence[dict], last_layer: int) -> dict[str, dict[str, float]]:
    """Count and mean change of :func:`unrelated_effect_per_neuron` rows in ``last_layer`` vs the
    other layers, and for inter-relation vs fact-specific neurons."""
    groups = {"last layer": lambda r: r["layer"] == last_layer, "other layers": lambda r: r["layer"] != last_layer,
              "inter-relation": lambda r: r["inter_relation"], "one relation": lambda r: not r["inter_relation"]}
    out = {}
    for name, keep in groups.items():
        values = [r["change"] for r in rows if keep(r)]
        out[name] = {"neurons": len(values), "mean_change": sum(values) / len(values) if values else float("nan")}
    return out
