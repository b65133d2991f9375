"""The Markdown of ``results/dro/results.md``: both protocols side by side, and the effect of the
training recipe alone and of the selection rule alone, computed from the same runs."""

from __future__ import annotations

import math
from typing import Any

SHARED = ("ratio", "ratio-selfnorm", "pdro", "erm", "cvar", "group-dro")
SETTINGS = (
    ("A", "current", "minmax", "current recipe, current selection (the current protocol)"),
    ("B", "current", "greedy-minmax", "current recipe, authors' selection"),
    ("C", "authors", "minmax", "authors' recipe, current selection"),
    ("D", "authors", "greedy-minmax", "authors' recipe, authors' selection (the authors' protocol)"),
)


def _fmt(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def _cell(summary: dict, protocol: str, method: str, rule: str, key: str = "worst") -> str:
    entry = summary[protocol].get(method, {}).get(rule)
    return _fmt(entry[key]) if entry else "—"


def _shared(summary: dict) -> list[str]:
    return [m for m in SHARED if m in summary["current"] and m in summary["authors"]]


def _movers(summary: dict) -> list[str]:
    """One sentence per shared method: how far the recipe alone and the selection alone moved the
    mean test worst-group accuracy (A -> C and A -> B), and the total (A -> D)."""
    lines = []
    for method in _shared(summary):
        mean = {tag: summary[p][method][r]["worst"]["mean"] for tag, p, r, _ in SETTINGS}
        lines.append(f"- **{method}**: recipe alone (A→C) {mean['C'] - mean['A']:+.3f}, selection alone (A→B) "
                     f"{mean['B'] - mean['A']:+.3f}, both (A→D) {mean['D'] - mean['A']:+.3f}.")
    return lines


def _kl_rows(valid_kl: dict[str, dict[str, list[list[float]]]]) -> list[dict[str, str]]:
    rows = []
    for protocol, by_method in valid_kl.items():
        for method, per_seed in by_method.items():
            row = {"protocol": protocol, "method": method}
            for epoch, values in enumerate(zip(*per_seed), 1):
                finite = [v for v in values if math.isfinite(v)]
                cell = f"{sum(finite) / len(finite):.2f} [{min(finite):.2f}, {max(finite):.2f}]" if finite else "—"
                row[f"epoch {epoch}"] = cell + (f" ({len(values) - len(finite)} NaN)" if len(finite) < len(values) else "")
            rows.append(row)
    return rows


def results_markdown(summary: dict, metrics: dict[str, Any], scale: tuple, seeds: list[int], not_shown: str) -> str:
    from quintet.core.runs import markdown_table

    text_model, n_train, epochs = scale
    data = metrics["data"]
    rows = []
    methods = list(dict.fromkeys([*summary["authors"], *summary["current"]]))
    for method in methods:
        rows.append({
            "method": method,
            "current: worst-group": _cell(summary, "current", method, "minmax"),
            "current: average": _cell(summary, "current", method, "minmax", "acc"),
            "authors': worst-group": _cell(summary, "authors", method, "greedy-minmax"),
            "authors': average": _cell(summary, "authors", method, "greedy-minmax", "acc"),
            "authors' runs, oracle: worst-group": _cell(summary, "authors", method, "oracle"),
        })
    grid = [{"method": m, **{f"{tag}: {label.split(' (')[0]}": _cell(summary, p, m, r) for tag, p, r, label in SETTINGS}}
            for m in _shared(summary)]
    pdro = metrics.get("pdro_adversary")
    pdro_note = (
        "*pdro*: P-DRO (Michel, Hashimoto & Neubig, ICLR 2021), whose adversary is a generative model: a "
        f"one-layer LSTM language model q_ψ(x, y) = q_ψ(y) Π_t q_ψ(x_t | y, x_<t) ({pdro['lm_embed_dim']}-d "
        f"embeddings, {pdro['lm_hidden']} units, an end-of-sentence symbol) that starts as a copy of the base model "
        f"p_0, fitted by maximum likelihood on the training sentences for {pdro['lm_epochs']} epochs; the "
        "classifier's losses are re-weighted by B·softmax(log q_ψ − log p_0) over the batch, and q_ψ is fitted to "
        f"the targets exp(ℓ/τ)/Z (τ = 0.01, Z averaged over the last K = {pdro['norm_window']} batches); its "
        "validation pool is its own log-ratios. " if pdro and "pdro" in {*summary["authors"], *summary["current"]} else "")
    global_entry = summary["authors"].get("ratio (global minmax)")
    global_note = (f"chosen per seed: {', '.join(global_entry['greedy-minmax']['runs'])}" if global_entry
                   else "not run here: it needs both ratio-DRO variants")
    parts = [
        f"# dro: BiasedSST under the current and the authors' protocol (seeds {seeds})\n\n",
        f"Model: {text_model} ({data['model_size']} size, sequences up to {data['max_len']} {'word pieces' if data.get('tokens') == 'wordpiece' else 'words'}), "
        f"{n_train or 'all'} training sentences, {epochs} epochs, batch 64. Data: the authors' SST-2 files "
        f"(`{data['sst_source']}`); groups {data['groups']}: train {data['train_group_counts']}, valid "
        f"{data['valid_group_counts']}, test {data['test_group_counts']}. Test accuracy of the checkpoint each "
        "protocol selects, mean ± std over seeds; *worst-group* is the paper's robust accuracy. "
        "λ (KL temperature τ) = 0.01 for both ratio-DRO variants, self-normalisation penalty β = 1; "
        "CVaR α = 0.2, χ² ball ρ = 1, KL ball κ = 1, Topic CVaR on 10 LDA topics with η_q = 0.1 — the "
        "paper does not state its λ or α, so these are our values.\n\n",
        "*current*: Adam (model lr 1e-3, adversary 1e-4, constant), mean loss, no clipping; Group DRO "
        "with shuffled batches, the updated q, η_q = 0.01; selection = minmax after training over all "
        "epochs, pool = uniform + the ratio-DRO adversaries of the same seed (KL ≤ log 10) for every method. "
        "*authors'*: AdamW for both players at one rate (1e-3 here), the model's rate decaying linearly "
        "to 0, both gradients clipped at norm 10, summed ratio loss; Group DRO with equal group sampling, "
        "q before the update, η_q = 0.1; selection = greedy in-training minmax on validation errors with "
        "each method's own pool (ratio DRO, P-DRO: their adversaries; CVaR/χ²/KL: their best responses on the "
        "validation losses; ERM, Group DRO: uniform only; Topic CVaR: worst-topic validation accuracy). "
        f"{pdro_note}*ratio (global minmax)*: the cross-run step between the two ratio-DRO runs of each seed "
        f"({global_note}). *oracle*: best validation worst-group accuracy "
        "(uses group labels).\n\n",
        markdown_table(rows),
        "\n## Which difference moved which number\n\n"
        "Mean ± std test worst-group accuracy of the methods trained under both recipes, with each "
        "selection rule applied to the same runs (A = current protocol, D = authors' protocol). Group "
        "DRO's recipe change also includes its sampling, q timing and η_q.\n\n",
        markdown_table(grid),
        "\n", "\n".join(_movers(summary)), "\n\n",
        "## The adversaries' validation KL\n\n"
        "KL(q ‖ p̂) of each adversary's weights on the validation set after each epoch (normalised over the "
        "set), mean [min, max] over the seeds where it is finite. Above log 10 = 2.30 an adversary is left out "
        "of the minmax pools, so a method whose adversaries all exceed it is selected under the uniform "
        "weighting alone (the authors' greedy rule filters ratio-selfnorm's raw, unnormalised ratios "
        "instead).\n\n",
        markdown_table(_kl_rows(metrics.get("valid_kl", {}))),
        "\n## Time per training step (median, seconds, 1 thread)\n\n",
        markdown_table([{"protocol": p, **{m: f"{v:.4f}" for m, v in times.items()}}
                        for p, times in metrics["seconds_per_step"].items()]),
        f"\nWall time of this invocation: {metrics['minutes']} minutes (finished runs kept in "
        f"`.checkpoints/` are reused, so a re-run only re-evaluates them).\n\n## The paper's numbers\n\n{not_shown}\n\n",
        "![adversary weights per group](dro_weights.png)\n\n![worst-group accuracy](dro_worst_group.png)\n",
    ]
    return "".join(parts)
