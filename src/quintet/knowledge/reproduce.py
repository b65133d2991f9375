"""``quintet reproduce knowledge``: the paper's §4-5 on the library's PARAREL fact LM."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
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
        "facts_analysed": len(facts),
        "mean_neurons_per_fact": sum(counts) / max(1, len(counts)),
        "facts_without_neurons": sum(c == 0 for c in counts),
        "sharing_ratio": sharing,
        "seconds_per_prompt_attribution": sec,
        "layer_histogram": hist,
        "suppress_amplify": o,
        "suppress_amplify_per_relation": sa["per_relation"],
        "update": up["mean"],
        "update_rows": up["rows"],
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

    P = ex.PAPER
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
    u = up["mean"]
    update_table = markdown_table([[u["facts"], f"{u['n_neurons']:.2f}", f"{100 * u['fact_success']:.1f} %",
                                    f"{100 * u['prompt_success']:.1f} %", f"{100 * u['change_intra']:.2f} %",
                                    f"{100 * u['change_inter']:.2f} %", f"{u['d_ppl_intra']:+.3f}", f"{u['d_ppl_inter']:+.3f}"]],
                                  ["facts updated", "neurons edited", "success (facts)", "success (prompts)",
                                   "change rate intra", "change rate inter", "Δ intra PPL", "Δ inter PPL"])
    e = erase_mean
    erase_table = markdown_table([
        ["erased relation", f"{e['ppl_before']:.3f}", f"{e['ppl_after']:.3f}", f"{e['ppl_random']:.3f}",
         f"{100 * e['acc_before']:.1f} %", f"{100 * e['acc_after']:.1f} %", f"{100 * e['acc_random']:.1f} %"],
        ["other relations", f"{e['other_ppl_before']:.3f}", f"{e['other_ppl_after']:.3f}", "",
         f"{100 * e['other_acc_before']:.1f} %", f"{100 * e['other_acc_after']:.1f} %", ""],
    ], ["prompts of", "PPL before", "PPL after erasing", "PPL after 20 random", "acc before", "acc after",
        "acc after 20 random"])
    markdown = f"""# Knowledge neurons — reproduction ({'quick' if quick else 'full'})

Dai et al., "Knowledge Neurons in Pretrained Transformers" (ACL 2022). No pretrained English LM can
be downloaded here, so the model is the library's fact LM: a `BertForMaskedLM`
({config.factlm.num_layers} layers, hidden {config.factlm.hidden_size}, {config.factlm.intermediate_size} FFN neurons per layer)
trained by `quintet knowledge train-factlm` on {lm['facts']} PARAREL facts of 34 relations
({lm['train_prompts']} training prompts; {lm['heldout_prompts']} prompts with held-out templates).

| fact LM | value |
|---|---|
| top-1 accuracy, training prompts | {100 * lm['train_accuracy']:.1f} % |
| top-1 accuracy, held-out templates (paraphrase generalisation) | {100 * lm['heldout_accuracy']:.1f} % |
| epochs, seconds | {lm['epochs_run']}, {lm['train_seconds']} |

Knowledge neurons: {len(facts)} facts (all prompts answered correctly), m = {config.steps} steps, t = {config.threshold},
p adapted per relation to 2–5 neurons per fact: mean **{metrics['mean_neurons_per_fact']:.2f}** neurons per fact
({metrics['facts_without_neurons']} facts with none); attribution {1000 * sec:.1f} ms per prompt (all layers).

## Suppressing and amplifying knowledge neurons (§4.2)

Relative change of the correct probability (mean over facts per relation, then over relations).
The activation baseline takes, per fact, as many neurons with the highest activation.

{table}
![layers](knowledge_layers.png)

![suppress](knowledge_suppress.png)

![amplify](knowledge_amplify.png)

## Updating facts (§5.1, λ1 = 1, λ2 = 8, neurons shared by > 10 % of the relation's facts excluded)

{update_table}
## Erasing relations (§5.2, value slots of the 20 most common knowledge neurons set to 0; mean over relations)

{erase_table}
![heatmap](knowledge_heatmap.png)
"""
    run.finish(markdown)
    return metrics
