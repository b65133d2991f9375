"""``quintet reproduce knowledge --model smollm2``: the paper's §3-5 on a pretrained causal LM.

Pipeline: PARAREL bags for a next-token model (:func:`~quintet.knowledge.pararel.causal_bags`:
templates ending in ``[Y]``, one held out per relation, single-token objects with their leading
space) -> facts the model knows (gold top-1, or probability >= ``min_prob``, on at least
``min_fraction`` of their prompts) -> integrated gradients with Gauss–Legendre nodes, P(0) per
layer kept for the completeness check, cached per fact so a stopped run resumes -> refined
knowledge neurons (the paper's refining; then, by default, only the neurons that leave known
facts outside the analysis nearly unchanged when suppressed alone,
:func:`~quintet.knowledge.specificity.check_on_heldout_facts`) -> suppress / amplify (own prompts,
held-out templates, unrelated facts; against the activation baseline and random neurons of the
same count), update (§5.1), erase (§5.2).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from quintet.core.errors import QuintetError
from quintet.core.runs import Run


@dataclass(frozen=True)
class PretrainedReproduceConfig:
    """One run on a pretrained causal LM (stored in results.json)."""

    model: str = "smollm2"
    quick: bool = True
    seed: int = 0
    facts_per_relation: int | None = 30  # sampled per relation before the knowledge filter (None: all)
    max_prompts: int = 3              # attribution templates per fact (one more per relation is held out)
    min_fraction: float = 0.5         # a fact is known if at least this share of its prompts is ...
    min_prob: float = 0.1             # ... answered top-1 or with at least this gold probability
    analysed_per_relation: int = 3    # known facts attributed per relation
    max_facts: int = 12
    steps: int = 5
    rule: str = "gauss"
    exclude_layers: tuple[int, ...] = (0,)  # attributed, but not searched for knowledge neurons
    specific: bool = False            # drop inter-relation neurons after the paper's refining
    heldout_tolerance: float | None = 0.02  # keep neurons moving held-out facts by less (None: no check)
    heldout_prompts: int = 30         # prompts of held-out known facts each neuron is checked on
    check_prompts: int = 1            # prompts on which Gauss m=5 is compared with denser rules
    threshold: float = 0.2
    band: tuple[float, float] = (2.0, 5.0)
    unrelated_prompts: int = 20
    all_variants: bool = False        # also the two last-layer-excluded refinements (full run)
    update_per_relation: int = 3
    erase_top: int = 20

    @classmethod
    def for_run(cls, model: str, quick: bool, seed: int) -> "PretrainedReproduceConfig":
        if quick:  # 100 facts per relation: the knowledge filter of every fact alone takes ~12 minutes
            return cls(model=model, quick=True, seed=seed, facts_per_relation=100, analysed_per_relation=2, max_facts=20)
        return cls(model=model, quick=False, seed=seed, facts_per_relation=None, analysed_per_relation=8,
                   max_facts=64, check_prompts=4, update_per_relation=5, unrelated_prompts=30, all_variants=True)


def cache_dir(config: PretrainedReproduceConfig) -> Path:
    """Per-fact attribution files: ``$QUINTET_CACHE`` (else ``~/.cache/quintet``)``/knowledge/attr-<model>``."""
    root = Path(os.environ.get("QUINTET_CACHE", "~/.cache/quintet")).expanduser()
    return root / "knowledge" / f"attr-{config.model}"


def known_cached(model, tok, bags, config: PretrainedReproduceConfig):
    """:func:`~quintet.knowledge.experiments.known_facts` of ``bags``, remembered in the cache folder
    (a JSON list of the known bags' indices, keyed by the model file's hash, the bags' text and the
    filter's settings)."""
    from quintet.core.io import atomic_write_json, read_json
    from quintet.knowledge.experiments import known_facts
    from quintet.knowledge.pretrained import PRETRAINED, file_hash, pretrained_file

    model_key = file_hash(pretrained_file(config.model)) if config.model in PRETRAINED else config.model
    key = hashlib.sha1(json.dumps([config.model, model_key, config.min_fraction, config.min_prob,
                                   [(b.relation, b.subject, b.object, b.prompts) for b in bags]]).encode()).hexdigest()[:16]
    file = cache_dir(config) / f"known-{key}.json"
    if file.is_file():
        return [bags[i] for i in read_json(file, "known-facts cache")]
    known = {id(b) for b in known_facts(model, tok, bags, config.min_fraction, config.min_prob)}
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(file, [i for i, b in enumerate(bags) if id(b) in known])
    return [b for b in bags if id(b) in known]


def select_facts(known, per_relation: int, limit: int, seed: int):
    """At most ``per_relation`` known facts per relation, at most ``limit`` in all, drawn
    round-robin over relations (seeded) so that no relation crowds out the others."""
    rng = random.Random(seed)
    by_rel: dict[str, list] = defaultdict(list)
    for bag in known:
        by_rel[bag.relation].append(bag)
    queues = {r: rng.sample(bags, min(per_relation, len(bags))) for r, bags in sorted(by_rel.items())}
    chosen = []
    while len(chosen) < limit and any(queues.values()):
        for relation in sorted(queues):
            if queues[relation] and len(chosen) < limit:
                chosen.append(queues[relation].pop(0))
    return chosen


def quadrature_check(model, tok, facts, n: int) -> list[dict[str, Any]]:
    """On the first prompt of ``n`` facts: completeness of Gauss m = 5, right m = 20 and Gauss m = 20
    (relative to Σ_l |P(w̄) − P(0)|), per rule, and the seconds each took."""
    from quintet.knowledge.attribution import integrated_gradients

    rows = []
    for f in facts[:n]:
        prompt, answer = f.bag.prompts[0], f.bag.object
        row: dict[str, Any] = {"prompt": prompt, "answer": answer}
        for name, steps, rule in (("gauss5", 5, "gauss"), ("right20", 20, "right"), ("gauss20", 20, "gauss")):
            start = time.perf_counter()
            attr = integrated_gradients(model, tok, prompt, answer, steps=steps, rule=rule, with_baseline=True)
            row[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
            gap = (attr.prob - attr.baseline_probs).abs()
            row[f"{name}_error"] = float(attr.completeness_gap().abs().sum() / gap.sum())
            row[f"{name}_error_layers_1_on"] = float(attr.completeness_gap()[1:].abs().sum() / gap[1:].sum())
        rows.append(row)
    return rows


def completeness(facts) -> dict[str, Any]:
    """Completeness of the run's own rule over every attributed prompt: per layer, the mean of
    ``|Σ_i Attr_i − (P(w̄) − P(0))|`` and of ``|P(w̄) − P(0)|``; overall, their ratio."""
    gaps = torch.cat([f.scores.double().sum(2) - (f.probs[:, None].double() - f.baseline_probs) for f in facts])
    spans = torch.cat([(f.probs[:, None].double() - f.baseline_probs).abs() for f in facts])
    error, span = gaps.abs().mean(0), spans.mean(0)
    return {"error_per_layer": error.tolist(), "span_per_layer": span.tolist(),
            "relative_error": float(error.sum() / span.sum()),
            "relative_error_layers_1_on": float(error[1:].sum() / span[1:].sum())}


def excluded_layer_diagnosis(model, tok, facts, config: PretrainedReproduceConfig, seed: int) -> dict[str, Any]:
    """What the search over *all* layers would add from ``config.exclude_layers``: per fact, the
    neurons of those layers coarse (t · max over all layers) in at least half its prompts; the most
    common one, the share of facts that have it, and the relative change of the correct
    probability on up to 60 prompts of all analysed facts when it alone is suppressed."""
    from quintet.knowledge.editing import answer_probs, relative_change
    from quintet.knowledge.neurons import coarse_neurons, refine_neurons

    per_fact = [refine_neurons([[n for n in coarse_neurons(s, config.threshold) if n[0] in config.exclude_layers]
                                for s in f.scores], 0.499) for f in facts]
    picked = Counter(n for neurons in per_fact for n in neurons)
    if not picked:
        return {"facts_with_excluded_layer_neurons": 0}
    (neuron, count), = picked.most_common(1)
    pairs = random.Random(seed).sample([(p, f.bag.object) for f in facts for p in f.bag.prompts],
                                       min(60, sum(len(f.bag.prompts) for f in facts)))
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    before = answer_probs(model, tok, prompts, answers)
    after = answer_probs(model, tok, prompts, answers, [neuron], factor=0.0)
    return {"facts_with_excluded_layer_neurons": sum(bool(neurons) for neurons in per_fact),
            "most_common": list(neuron), "facts_with_most_common": count,
            "suppress_most_common_relative_change": relative_change(before.prob, after.prob),
            "suppress_most_common_top1_kept": float((before.argmax == after.argmax).float().mean())}


def _factlm_numbers(out: Path) -> dict[str, float] | None:
    """Suppress/amplify of the fact LM's committed run (``results.json`` one folder up), if present."""
    file = out.parent / "results.json"
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())["metrics"]["suppress_amplify"]
    except (ValueError, KeyError):
        return None


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a :func:`~quintet.knowledge.experiments.suppress_amplify` result a variant row shows."""
    return {"overall": result["overall"], "spread": result["spread"], "facts": result["facts"]}


def run_reproduce_lm(out: Path, model_name: str = "smollm2", quick: bool = True, seed: int = 0,
                     log=print, config: PretrainedReproduceConfig | None = None) -> dict[str, Any]:
    """Run the pipeline of this module; ``config`` overrides the quick/full settings."""
    from quintet.knowledge import experiments as ex
    from quintet.knowledge.adapters import get_adapter
    from quintet.knowledge.neurons import layer_histogram
    from quintet.knowledge.pararel import causal_bags
    from quintet.knowledge.plots import (
        completeness_plot,
        effect_bars,
        heatmap,
        layer_distribution,
        neuron_effects,
    )
    from quintet.knowledge.pretrained import load_pretrained
    from quintet.knowledge.report_lm import VARIANTS, markdown
    from quintet.knowledge.specificity import (
        check_on_heldout_facts,
        inter_relation_neurons,
        overlap,
        summarise_effects,
        unrelated_effect_per_neuron,
    )

    torch.set_num_threads(1)
    config = config or PretrainedReproduceConfig.for_run(model_name, quick, seed)
    seed = config.seed
    out = Path(out)
    run = Run(out, config)
    start = time.perf_counter()
    model, tok = load_pretrained(config.model)
    load_seconds = time.perf_counter() - start
    log(f"[knowledge] {config.model} loaded in {load_seconds:.1f} s")
    bags, counts = causal_bags(tok, config.facts_per_relation, max_prompts=config.max_prompts, seed=seed)
    t0 = time.perf_counter()
    known = known_cached(model, tok, bags, config)
    filter_seconds = time.perf_counter() - t0
    counts.facts_known, counts.relations_known = len(known), len({b.relation for b in known})
    log(f"[knowledge] filters: {counts.as_dict()} ({filter_seconds:.0f} s)")
    chosen = select_facts(known, config.analysed_per_relation, config.max_facts, seed)
    if not chosen:
        raise QuintetError(f"{config.model} knows none of the {counts.facts_sampled} sampled PARAREL facts "
                           f"(min_fraction {config.min_fraction}, min_prob {config.min_prob})")

    def neurons(log=lambda _: None, exclude_layers=config.exclude_layers, specific=False):
        return ex.find_neurons(model, tok, chosen, steps=config.steps, threshold=config.threshold, band=config.band,
                               log=log, rule=config.rule, with_baseline=True, cache=cache_dir(config),
                               exclude_layers=exclude_layers, specific=specific)

    t0 = time.perf_counter()
    plain, sharing, sec = neurons(log)
    attribution_seconds = time.perf_counter() - t0
    log(f"[knowledge] attribution: {sec:.2f} s per prompt")
    variants = {"paper": plain, "specific": neurons(specific=True)[0]}
    used = "specific" if config.specific else "paper"
    checks: list[dict] = []
    outside = [b for b in known if all(b is not c for c in chosen)]  # known facts never analysed
    if config.heldout_tolerance is not None:
        log("[knowledge] checking knowledge neurons on held-out facts ...")
        base = variants[used]
        kept, checks = check_on_heldout_facts(model, tok, [f.neurons for f in base], [f.bag.relation for f in base],
                                              outside, config.heldout_tolerance, config.heldout_prompts, seed)
        variants["checked"] = ex.with_neurons(base, kept)
        used = "checked"
    facts = variants[used]
    n_layers = get_adapter(model).n_layers
    without_last = tuple(sorted({*config.exclude_layers, n_layers - 1}))
    check = quadrature_check(model, tok, facts, config.check_prompts)
    counts_per_fact = [len(f.neurons) for f in facts]
    hist = layer_histogram([n for f in facts for n in f.neurons], n_layers)
    log("[knowledge] suppress / amplify ...")
    sa = ex.suppress_amplify(model, tok, facts, config.unrelated_prompts, seed)
    if config.all_variants:
        variants["last_layer_excluded"] = neurons(exclude_layers=without_last, specific=False)[0]
        variants["last_layer_excluded_specific"] = neurons(exclude_layers=without_last, specific=True)[0]
    del variants[used]  # the refining used: the main rows
    sa_variants = {name: _summary(ex.suppress_amplify(model, tok, group, config.unrelated_prompts, seed, methods=("kn",)))
                   for name, group in variants.items()}
    log("[knowledge] single neurons on unrelated facts ...")
    effects = unrelated_effect_per_neuron(model, tok, plain, config.unrelated_prompts, seed)
    relations = [f.bag.relation for f in plain]
    shared = inter_relation_neurons([f.neurons for f in plain], relations)
    log("[knowledge] update ...")
    objects = defaultdict(set)
    for bag in bags:
        objects[bag.relation].add(bag.object)
    up = ex.update_facts(model, tok, facts, per_relation=config.update_per_relation, seed=seed,
                         objects={r: sorted(o) for r, o in objects.items()})
    log("[knowledge] erase ...")
    er = ex.erase_relations(model, tok, facts, top=config.erase_top, seed=seed)
    erase_mean = {k: sum(r[k] for r in er["rows"]) / max(1, len(er["rows"])) for k in er["rows"][0]
                  if k != "relation"} if er["rows"] else {}
    probs = torch.cat([f.probs for f in facts])
    metrics = {
        "filters": counts.as_dict(),
        "known_per_relation": dict(sorted(Counter(b.relation for b in known).items())),
        "facts_analysed": len(facts),
        "prompts_analysed": int(probs.numel()),
        "relations_analysed": len({f.bag.relation for f in facts}),
        "gold_prob_mean": float(probs.mean()),
        "mean_neurons_per_fact": sum(counts_per_fact) / max(1, len(counts_per_fact)),
        "facts_without_neurons": sum(c == 0 for c in counts_per_fact),
        "sharing": sharing,
        "seconds_load": round(load_seconds, 1),
        "seconds_filter": round(filter_seconds, 1),
        "seconds_per_prompt_attribution": sec,
        "completeness": completeness(facts),
        "excluded_layer_diagnosis": excluded_layer_diagnosis(model, tok, facts, config, seed),
        "quadrature_check": check,
        "seconds_attribution": round(attribution_seconds, 1),
        "layer_histogram": hist,
        "layer_histogram_paper": layer_histogram([n for f in plain for n in f.neurons], n_layers),
        "mean_neurons_per_fact_paper": sum(len(f.neurons) for f in plain) / max(1, len(plain)),
        "facts_without_neurons_paper": sum(not f.neurons for f in plain),
        "overlap_paper": overlap([f.neurons for f in plain], relations),
        "inter_relation_neurons_paper": sorted(shared),
        "unrelated_effect_per_neuron": effects,
        "unrelated_effect_summary": summarise_effects(effects, n_layers - 1),
        "suppress_amplify_variants": sa_variants,
        "refining_used": used,
        "heldout_facts": len(outside),
        "heldout_check": checks,
        "suppress_amplify": sa["overall"],
        "suppress_amplify_spread": sa["spread"],
        "suppress_amplify_facts": sa["facts"],
        "suppress_amplify_interval": sa["interval"],
        "suppress_amplify_per_relation": sa["per_relation"],
        "update": {scale: u["mean"] for scale, u in up.items()},
        "update_rows": {scale: u["rows"] for scale, u in up.items()},
        "erase_mean": erase_mean,
        "erase_rows": er["rows"],
        "factlm_suppress_amplify": _factlm_numbers(out),
    }
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    run.log_metrics(metrics)
    run.save_figure(layer_distribution(hist, f"Knowledge neurons per layer ({config.model})",
                                       metrics["layer_histogram_paper"] if used != "paper" else None,
                                       ("paper's refining", VARIANTS[used].removeprefix("knowledge neurons, "))),
                   "knowledge_layers.png")
    run.save_figure(neuron_effects(effects, n_layers), "knowledge_unrelated_neurons.png")
    run.save_figure(effect_bars(sa["per_relation"], "suppress"), "knowledge_suppress.png")
    run.save_figure(effect_bars(sa["per_relation"], "amplify"), "knowledge_amplify.png")
    run.save_figure(completeness_plot(metrics["completeness"]), "knowledge_completeness.png")
    example = facts[0]
    run.save_figure(heatmap(example.scores[0], f"{example.bag.prompts[0]} -> {example.bag.object}"),
                    "knowledge_heatmap.png")
    run.finish(markdown(config, metrics, up))
    log(f"[knowledge] done in {metrics['seconds']:.0f} s")
    return metrics
