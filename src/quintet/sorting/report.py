"""results.json / results.md / PNG of the ranking experiment, with the published numbers beside
ours (each with its source, or "not shown" where none was found)."""

from __future__ import annotations

from pathlib import Path

from quintet.core.runs import Run, markdown_table
from quintet.sorting import paper_numbers as pn
from quintet.sorting.protocol import PAPER_STEPS, tag
from quintet.sorting.ranking import RankingConfig

__all__ = ["paper_columns", "protocol_markdown", "render_report", "write_report"]


def _paper_for(relaxation: str) -> str:
    """The paper whose table holds a (network, relaxation) row: the ICLR 2022 paper introduced the
    monotonic relaxations, the ICML 2021 paper the logistic ones."""
    return "2203.09630" if relaxation in ("cauchy", "reciprocal", "optimal") else "2105.04019"


def paper_columns(network: str, relaxation: str, n: int) -> dict:
    """The published numbers for one of our rows, ``None`` where none was found."""
    paper = _paper_for(relaxation)
    found = pn.PAPER_RESULTS.get((paper, network, relaxation, n))
    neural = pn.NEURALSORT_GROVER2019["deterministic"].get(n)
    return {
        "paper": f"arXiv {paper}",
        "paper_exact_match": found[0] if found else None,
        "paper_element_wise": found[1] if found else None,
        "paper_source": found[2] if found else None,
        "neuralsort_exact_match": neural[0] if neural else None,
        "neuralsort_element_wise": neural[1] if neural else None,
    }


def _rows(configs: list[RankingConfig], results: list[dict]) -> list[dict]:
    rows = []
    for cfg, res in zip(configs, results):
        rows.append({"network": cfg.network, "n": cfg.n, "relaxation": cfg.relaxation, "batch_size": cfg.batch_size,
                     "test_sets": cfg.eval_sets, "valid_sets": cfg.valid_sets, "eval_every": cfg.eval_every,
                     "steps_target": cfg.steps, "fraction_of_paper_steps": res["steps"] / PAPER_STEPS,
                     **{k: v for k, v in res.items() if k != "curve"},
                     **paper_columns(cfg.network, cfg.relaxation, cfg.n)})
    return rows


def _paper_cell(row: dict) -> str:
    if row["paper_exact_match"] is None:
        return f"not shown ({row['paper']})"
    return f"{row['paper_exact_match']:.1f} / {row['paper_element_wise']:.1f} ({row['paper_source']})"


def protocol_markdown(rows: list[dict], scale: str) -> str:
    """The results table (ours beside the papers'), the protocol and how far each run got."""
    table = markdown_table([{
        "network": r["network"], "n": r["n"],
        "steepness": f"{r['steepness']:g} ({r['steepness_source']})",
        "steps (of 100 000)": f"{r['steps']:,} ({100 * r['fraction_of_paper_steps']:.2f} %)",
        "sets seen": f"{r['steps'] * r['batch_size']:,}",
        "best valid step": r["best_step"] if r["valid_exact_match"] is not None else "none yet: last weights",
        "exact match %": round(100 * r["exact_match"], 1),
        "element-wise %": round(100 * r["element_wise"], 1),
        "paper exact / element-wise %": _paper_cell(r),
        "NeuralSort exact / element-wise % (Grover et al. 2019, Table 1)":
            "-" if r["neuralsort_exact_match"] is None
            else f"{r['neuralsort_exact_match']:.1f} / {r['neuralsort_element_wise']:.1f}",
        "train s": r["train_seconds"]} for r in rows])
    r0 = rows[0]
    missing = "\n".join(f"- {item}" for item in pn.NOT_FOUND)
    readme = ", ".join(f"{net} n = {n}: {beta:g}" for (net, n), beta in pn.README_STEEPNESS.items())
    return (
        "# Ranking supervision on four-digit MNIST\n\n"
        f"{scale}\n\n"
        "Protocol (ICML 2021 Sec. 5.1, the authors' `experiments/main.py`): the CNN of the authors "
        "(two 5x5 conv layers with 32 and 64 channels, max-pooling, 64 hidden units), batch 100 sets, "
        "Adam at 10^-3.5, the Cauchy relaxation, the 60 000 MNIST training images cut into 55 000 for "
        "training and the last 5 000 for validation, every digit of every number drawn independently "
        "(so a set may hold equal numbers; their true order is the stable one), and the test score "
        f"taken with the weights of the best validation exact match. Validation: {r0['valid_sets']:,} sets "
        f"every {r0['eval_every']} steps (before the first, the last weights are scored); test: "
        f"{r0['test_sets']:,} sets of the MNIST test split (the script: 5 000 sets every 1 000 steps, "
        "and 10 000 test sets). The papers train 100 000 steps; the steps column says how far each "
        "run got. Steepness: README = the authors' README command; interpolated = between the two "
        "README points, not a value from the papers.\n\n" + table +
        "\n## Beside the papers\n\n"
        "The diffsort papers' own accuracy tables are **not shown** beside these runs; "
        "no number is given without its source. Missing:\n\n" + missing + "\n\n"
        f"Steepness from the authors' README: {readme}. The published reference on the same task "
        "that was found is NeuralSort (Grover et al., ICLR 2019, arXiv 1903.08850, Table 1; their "
        "CNN and training schedule), in the last column; it has no n = 32 column.\n"
    )


def _figure(rows: list[dict], curves: dict):
    """Test exact match per run beside NeuralSort's, and the validation curves where there are any."""
    from quintet.core.plotting import plt

    fig, (bars, lines) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{r['network']}\nn={r['n']}\n{r['steps']:,} steps" for r in rows]
    xs = range(len(rows))
    bars.bar(xs, [100 * r["exact_match"] for r in rows], color="tab:blue", label="ours (test)")
    neural = [(x, r["neuralsort_exact_match"]) for x, r in zip(xs, rows) if r["neuralsort_exact_match"] is not None]
    if neural:
        bars.scatter(*zip(*neural), color="tab:red", marker="_", s=400, label="NeuralSort (Grover et al. 2019, Tab. 1)")
    bars.set_xticks(list(xs), labels, fontsize=7)
    bars.set(ylabel="exact match %", ylim=(0, 100), title="test exact match (of 100 000 steps: see labels)")
    bars.legend(fontsize=7)
    shown = False
    for name, curve in curves.items():
        if curve:
            lines.plot([c["step"] for c in curve], [100 * c["exact_match"] for c in curve], marker="o", label=name)
            shown = True
    lines.set(xlabel="training step", ylabel="exact match % (validation sets)",
              title="validation curves")
    if shown:
        lines.legend(fontsize=7)
    else:
        lines.text(0.5, 0.5, "no validation point yet\n(every 100 steps)", ha="center", va="center",
                   transform=lines.transAxes)
    fig.tight_layout()
    return fig


def render_report(out: Path, scale: str) -> None:
    """(Re)write results.md and the figure of ``out`` from its results.json (no training, no scoring)."""
    import json

    metrics = json.loads((out / "results.json").read_text())["metrics"]
    run = Run(out)
    run.save_figure(_figure(metrics["results"], metrics["curves"]), "sorting_training_curve.png")
    run.write_markdown(protocol_markdown(metrics["results"], scale)
                       + "\n![test exact match and validation curves](sorting_training_curve.png)\n")


def write_report(out: Path, configs: list[RankingConfig], results: list[dict], scale: str, meta: dict) -> dict:
    """Write results.json, results.md and the figure into ``out``; return the metrics."""
    rows = _rows(configs, results)
    run = Run(out, {**meta, "scale": scale, "runs": [c.__dict__ for c in configs]})
    metrics = {"results": rows, "curves": {tag(c): r.get("curve", []) for c, r in zip(configs, results)},
               "paper_numbers": {
                   "not_found": list(pn.NOT_FOUND), "script_defaults": pn.SCRIPT_DEFAULTS,
                   "readme_steepness": {f"{net}-n{n}": b for (net, n), b in pn.README_STEEPNESS.items()},
                   "neuralsort_grover2019_table1": {k: {str(n): v for n, v in d.items()}
                                                    for k, d in pn.NEURALSORT_GROVER2019.items()}}}
    run.log_metrics(metrics)
    render_report(out, scale)
    return metrics
