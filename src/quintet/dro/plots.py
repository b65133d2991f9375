"""Figures: the adversary's mean weight per group over training, and worst-group accuracy bars."""

from __future__ import annotations

from typing import Any


def weights_figure(runs: dict[str, dict[str, Any]]):
    """One panel per run (two per row): mean adversary weight ``w`` of each group over training (log scale).

    ``runs``: panel title -> a ratio-DRO or P-DRO result of :func:`quintet.dro.experiments.train_on`.
    """
    from quintet.core.plotting import plt

    cols = min(2, len(runs))
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, (task, result) in zip(axes.flat, runs.items()):
        weights = result["weights"]
        epochs = result["config"]["epochs"]
        xs = [(i + 1) * epochs / max(1, len(weights)) for i in range(len(weights))]
        for g, name in enumerate(result["group_names"]):
            ax.plot(xs, [max(w[g], 1e-3) for w in weights], marker=".", label=name)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean adversary weight w")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def worst_group_figure(panels: dict[str, dict[str, dict[str, Any]]]):
    """Bars of test worst-group accuracy (mean +- std over seeds), one panel per key of ``panels``.

    ``panels``: panel title -> method -> ``{"worst": {"mean", "std"}}``.
    """
    from quintet.core.plotting import plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.4), squeeze=False)
    for ax, (title, by_method) in zip(axes[0], panels.items()):
        methods = list(by_method)
        means = [by_method[m]["worst"]["mean"] for m in methods]
        stds = [by_method[m]["worst"]["std"] for m in methods]
        ax.bar(range(len(methods)), means, yerr=stds,
               color=["C3" if m.startswith("ratio") or m == "pdro" else "C0" for m in methods])
        ax.set_xticks(range(len(methods)), [m.replace(" (", "\n(") for m in methods], fontsize=7, rotation=30)
        ax.set_ylim(0, 1)
        ax.set_ylabel("test worst-group accuracy")
        ax.set_title(title)
    fig.tight_layout()
    return fig
