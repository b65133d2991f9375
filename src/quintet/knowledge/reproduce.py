"""``quintet reproduce knowledge``: the paper's §4-5 on the library's PARAREL fact LM."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from quintet.core.runs import Run, markdown_table
from quintet.knowledge.factlm import FactLMConfig


@dataclass(frozen=True)
class ReproduceConfig:
    quick: bool = True
    seed: int = 0
    steps: int = 20
    threshold: float = 0.2
    band: tuple[float, float] = (2.0, 5.0)
    unrelated_prompts: int = 10
    update_per_relation: int = 3
    erase_top: int = 20
    factlm: FactLMConfig = field(default_factory=FactLMConfig.quick)


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} %"


def factlm_dir(config: FactLMConfig) -> Path:
    """Where the fact LM of ``config`` is cached: ``$QUINTET_CACHE`` (else ``~/.cache/quintet``)
    ``/knowledge/factlm-<hash of the config>``. Weights stay out of ``results/``; a changed recipe
    gets a fresh folder, so it is retrained."""
    from dataclasses import asdict

    root = Path(os.environ.get("QUINTET_CACHE", "~/.cache/quintet")).expanduser()
    key = hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    return root / "knowledge" / f"factlm-{key}"


def _trained(model_dir: Path, config: FactLMConfig) -> bool:
    from dataclasses import asdict

    files = ("config.json", "model.safetensors", "facts.json")
    if not all((model_dir / f).is_file() for f in files):
        return False
    return json.loads((model_dir / "facts.json").read_text()).get("config") == json.loads(json.dumps(asdict(config)))


def run_reproduce(out: Path, quick: bool = True, seed: int = 0, log=print) -> dict[str, Any]:
    from quintet.knowledge import experiments as ex
    from quintet.knowledge.factlm import load_facts, load_model, train_factlm
    from quintet.knowledge.neurons import layer_histogram
    from quintet.knowledge.plots import effect_bars, heatmap, layer_distribution

    torch.set_num_threads(1)
    config = ReproduceConfig(quick=quick, seed=seed, update_per_relation=3 if quick else 10,
                             factlm=FactLMConfig.quick(seed) if quick else FactLMConfig(seed=seed))
    out = Path(out)
    run = Run(out, config)
    start = time.perf_counter()
    model_dir = factlm_dir(config.factlm)
    if not _trained(model_dir, config.factlm):
        log(f"[knowledge] training the fact LM into {model_dir}")
        train_factlm(model_dir, config.factlm, log=log, resume=True)
        shutil.rmtree(model_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(model_dir / "tokenizer-build", ignore_errors=True)
    else:
        log(f"[knowledge] using the cached fact LM {model_dir}")
    shutil.rmtree(out / "factlm", ignore_errors=True)  # older runs kept the weights here

    lm = json.loads((model_dir / "facts.json").read_text())["metrics"]
    model, tok = load_model(model_dir)
    bags = load_facts(model_dir)
    facts_ok = ex.memorised(model, tok, bags)
    log(f"[knowledge] {len(facts_ok)}/{len(bags)} facts answered on every training prompt")
    facts, sharing, sec = ex.find_neurons(model, tok, facts_ok, steps=config.steps, threshold=config.threshold,
                                          band=config.band, log=log)
    counts = [len(f.neurons) for f in facts]
    hist = layer_histogram([n for f in facts for n in f.neurons], model.config.num_hidden_layers)
    diagnosis = _diagnose(model, tok, facts, sharing, config)
    log(f"[knowledge] diagnosis: {json.dumps(diagnosis)}")
    log("[knowledge] suppress / amplify ...")
    sa = ex.suppress_amplify(model, tok, facts, config.unrelated_prompts, seed)
    log("[knowledge] update ...")
    up = ex.update_facts(model, tok, facts, per_relation=config.update_per_relation, seed=seed)
    log("[knowledge] erase ...")
    er = ex.erase_relations(model, tok, facts, top=config.erase_top, seed=seed)
    o = sa["overall"]
    erase_mean = {k: sum(r[k] for r in er["rows"]) / max(1, len(er["rows"]))
                  for k in ("ppl_before", "ppl_after", "ppl_random", "acc_before", "acc_after", "acc_random",
                            "other_ppl_before", "other_ppl_after", "other_acc_before", "other_acc_after")}
    metrics = {
        "factlm": lm,
        "factlm_config": asdict(config.factlm),
        "facts_analysed": len(facts),
        "mean_neurons_per_fact": sum(counts) / max(1, len(counts)),
        "facts_without_neurons": sum(c == 0 for c in counts),
        "sharing": sharing,
        "seconds_per_prompt_attribution": sec,
        "layer_histogram": hist,
        "diagnosis": diagnosis,
        "suppress_amplify": o,
        "suppress_amplify_per_relation": sa["per_relation"],
        "update": {scale: u["mean"] for scale, u in up.items()},
        "update_rows": {scale: u["rows"] for scale, u in up.items()},
        "erase_mean": erase_mean,
        "erase_rows": er["rows"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    run.log_metrics(metrics)
    run.save_figure(layer_distribution(hist), "knowledge_layers.png")
    run.save_figure(effect_bars(sa["per_relation"], "suppress"), "knowledge_suppress.png")
    run.save_figure(effect_bars(sa["per_relation"], "amplify"), "knowledge_amplify.png")
    example = facts[0]
    from quintet.knowledge.attribution import integrated_gradients

    attr = integrated_gradients(model, tok, example.bag.prompts[0], example.bag.object, steps=config.steps)
    run.save_figure(heatmap(attr.scores, f"{example.bag.prompts[0]} -> {example.bag.object}"), "knowledge_heatmap.png")
    run.finish(_markdown(config, lm, metrics, o, up, erase_mean, quick))
    return metrics


def _diagnose(model, tok, facts, sharing, config) -> dict[str, Any]:
    """Numbers that say how far the fact LM is from the paper's regime (see docs/knowledge.md)."""
    from quintet.knowledge.adapters import get_adapter
    from quintet.knowledge.prompts import answer_id

    adapter = get_adapter(model)
    probs = torch.cat([f.probs for f in facts])
    mass = sum(f.scores.clamp_min(0).sum((0, 2)) for f in facts)
    neurons = [(f, n) for f in facts for n in f.neurons]
    negative = sum(float(f.activations[:, n[0], n[1]].mean()) < 0 for f, n in neurons)
    emb = adapter.word_embeddings().detach()
    objects = sorted({f.bag.object for f in facts})
    emb_norm = float(emb[[answer_id(tok, o) for o in objects]].norm(dim=1).mean())
    slot_norm = [float(adapter.value_slots(layer).detach().norm(dim=1).mean()) for layer in range(adapter.n_layers)]
    kn_slot_norm = [float(adapter.value_slots(n[0])[n[1]].detach().norm()) for _, n in neurons]
    thresholds = [v["t"] for v in sharing.values()]
    by_rel: dict[str, list[int]] = {}
    for f in facts:
        by_rel.setdefault(f.bag.relation, []).append(len(f.neurons))
    lo, hi = config.band
    return {
        "gold_prob_mean": float(probs.mean()),
        "gold_prob_median": float(probs.median()),
        "gold_prob_above_0.9": float((probs > 0.9).float().mean()),
        "max_possible_amplify_gain": float((1 / probs - 1).mean()),
        "attribution_mass_per_layer": [float(x) for x in mass / mass.sum()],
        "knowledge_neurons_negative_activation": negative / max(1, len(neurons)),
        "object_embedding_norm": emb_norm,
        "value_slot_norm_per_layer": slot_norm,
        "knowledge_neuron_slot_norm": sum(kn_slot_norm) / max(1, len(kn_slot_norm)),
        "relations_in_band": sum(lo <= sum(c) / len(c) <= hi for c in by_rel.values()),
        "relations": len(by_rel),
        "relations_with_raised_t": sum(t > config.threshold for t in thresholds),
        "mean_t": sum(thresholds) / max(1, len(thresholds)),
    }


def _markdown(config, lm, metrics, o, up, erase_mean, quick) -> str:
    from quintet.knowledge import report_lm

    P = ex_paper()
    d = metrics["diagnosis"]
    table = markdown_table([
        ["suppress", "knowledge neurons", _pct(o.get("kn/suppress/own", 0)), _pct(o.get("kn/suppress/unrelated", 0)),
         _pct(o.get("kn/suppress/heldout", 0)), _pct(P["suppress"]["own"]), _pct(P["suppress"]["unrelated"])],
        ["suppress", "activation baseline", _pct(o.get("baseline/suppress/own", 0)),
         _pct(o.get("baseline/suppress/unrelated", 0)), _pct(o.get("baseline/suppress/heldout", 0)), "", ""],
        ["amplify", "knowledge neurons", _pct(o.get("kn/amplify/own", 0)), _pct(o.get("kn/amplify/unrelated", 0)),
         _pct(o.get("kn/amplify/heldout", 0)), _pct(P["amplify"]["own"]), _pct(P["amplify"]["unrelated"])],
        ["amplify", "activation baseline", _pct(o.get("baseline/amplify/own", 0)),
         _pct(o.get("baseline/amplify/unrelated", 0)), _pct(o.get("baseline/amplify/heldout", 0)), "", ""],
    ], ["operation", "neurons", "own facts", "unrelated facts", "own facts, held-out templates",
        "paper own (BERT-base)", "paper unrelated"])
    update_table = report_lm.update_table(up)
    erase_table = report_lm.erase_table(erase_mean)
    f = config.factlm
    layers = ", ".join(f"{100 * x:.0f} %" for x in d["attribution_mass_per_layer"])
    slots = ", ".join(f"{x:.3f}" for x in d["value_slot_norm_per_layer"])
    sec = metrics["seconds_per_prompt_attribution"]
    return f"""# Knowledge neurons — reproduction ({'quick' if quick else 'full'})

Dai et al., "Knowledge Neurons in Pretrained Transformers" (ACL 2022). No pretrained English LM can
be downloaded here, so the model is the library's fact LM: a `BertForMaskedLM`
({f.num_layers} layers, hidden {f.hidden_size}, {f.intermediate_size} FFN neurons per layer, dropout {f.dropout})
trained by `quintet knowledge train-factlm` on {lm['facts']} PARAREL facts of 34 relations
({lm['train_prompts']} training prompts; {lm['heldout_prompts']} prompts with held-out templates) with BERT's
masked-LM noise (object slot 80 % [MASK] / 10 % random / 10 % kept, plus {100 * f.mlm_probability:.0f} % of the
other tokens), label smoothing {f.label_smoothing}, stopped once the training prompts reach
{100 * f.target_accuracy:.0f} % top-1. The weights are cached outside `results/` and retrained when absent.

| fact LM | value |
|---|---|
| top-1 accuracy, training prompts | {100 * lm['train_accuracy']:.1f} % |
| top-1 accuracy, held-out templates (paraphrase generalisation) | {100 * lm['heldout_accuracy']:.1f} % |
| epochs, seconds | {lm['epochs_run']}, {lm['train_seconds']} |

Knowledge neurons: {metrics['facts_analysed']} facts (all training prompts answered correctly), m = {config.steps} steps,
t = {config.threshold}, p adapted per relation towards 2–5 neurons per fact (t raised only where p is exhausted:
{d['relations_with_raised_t']} of {d['relations']} relations, mean t {d['mean_t']:.2f}): mean **{metrics['mean_neurons_per_fact']:.2f}**
neurons per fact ({metrics['facts_without_neurons']} facts with none; {d['relations_in_band']} of {d['relations']} relations
inside 2–5). Attribution took {1000 * sec:.1f} ms per prompt (all layers, m = {config.steps}) in this run, on a
shared 2-core machine with 1 thread.

## Diagnosis (this run)

| quantity | value |
|---|---|
| gold probability on the analysed prompts, mean / median | {d['gold_prob_mean']:.3f} / {d['gold_prob_median']:.3f} |
| prompts with gold probability > 0.9 | {100 * d['gold_prob_above_0.9']:.1f} % |
| largest possible relative gain, mean of 1/P − 1 (bounds amplification) | {100 * d['max_possible_amplify_gain']:+.1f} % |
| positive attribution mass per layer (1 → {f.num_layers}) | {layers} |
| knowledge neurons with negative mean activation (GELU < 0) | {100 * d['knowledge_neurons_negative_activation']:.1f} % |
| word embedding norm of objects, ‖e(t)‖ | {d['object_embedding_norm']:.3f} |
| value slot norm per layer (mean) / of knowledge neurons | {slots} / {d['knowledge_neuron_slot_norm']:.3f} |

## Suppressing and amplifying knowledge neurons (§4.2)

Relative change of the correct probability (mean over facts per relation, then over relations).
The activation baseline takes, per fact, as many neurons with the highest activation.

{table}
![layers](knowledge_layers.png)

![suppress](knowledge_suppress.png)

![amplify](knowledge_amplify.png)

## Updating facts (§5.1, λ1 = 1, λ2 = 8, neurons shared by > 10 % of the relation's other facts excluded)

Success: the new object t' becomes the top-1 prediction (per prompt of the fact, and per fact by
majority of its prompts). Change rate: top-1 predictions of other facts that change. Up to
{config.update_per_relation} facts per relation; {next(iter(up.values()))['mean']['skipped_without_neurons']} facts were skipped (and replaced where the relation had
more) because none of their knowledge neurons was exclusive.

{update_table}
## Erasing relations (§5.2, value slots of the 20 most common knowledge neurons set to 0; mean over relations)

{erase_table}
![heatmap](knowledge_heatmap.png)
"""


def ex_paper() -> dict:
    from quintet.knowledge.experiments import PAPER

    return PAPER
