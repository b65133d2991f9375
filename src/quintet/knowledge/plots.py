"""Figures: attribution heatmap (layers × neurons), layer distribution (Fig. 3), effects (Fig. 4-5)."""

from __future__ import annotations

from typing import Sequence

import torch


def heatmap(scores: torch.Tensor, title: str = ""):
    """Attribution scores ``(n_layers, n_neurons)`` as an image; returns the figure."""
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(10, 0.45 * scores.shape[0] + 1.5))
    top = float(scores.abs().max()) or 1.0
    im = ax.imshow(scores.float().numpy(), aspect="auto", cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    ax.set_xlabel("intermediate neuron")
    ax.set_ylabel("layer")
    ax.set_yticks(range(scores.shape[0]))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="attribution")
    return fig


def layer_distribution(counts: Sequence[int], title: str = "Knowledge neurons per layer",
                       before: Sequence[int] | None = None, labels: tuple[str, str] = ("", "")):
    """Share of knowledge neurons per layer; with ``before``, its bars beside ``counts`` (``labels``:
    the names of ``before`` and ``counts``)."""
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.22 * len(counts)), 3))
    layers = list(range(1, len(counts) + 1))
    width = 0.4 if before is not None else 0.8
    if before is not None:
        ax.bar([i - width / 2 for i in layers], [100 * c / max(1, sum(before)) for c in before], width,
               color="#c44e52", label=labels[0])
    ax.bar([i + (width / 2 if before is not None else 0) for i in layers],
           [100 * c / max(1, sum(counts)) for c in counts], width, color="#4c72b0", label=labels[1] or None)
    if before is not None:
        ax.legend(fontsize=8)
    step = 1 if len(counts) <= 12 else 5
    ax.set_xticks([i for i in layers if i == 1 or i % step == 0])
    ax.set_xlabel("layer")
    ax.set_ylabel("% of knowledge neurons")
    ax.set_title(title)
    return fig


def effect_bars(per_relation: dict[str, dict[str, float]], mode: str):
    """Per relation: relative change (%) of the correct probability, own vs unrelated facts."""
    from quintet.core.plotting import plt

    rels = sorted(per_relation, key=lambda r: int(r[1:]))
    own = [100 * per_relation[r].get(f"kn/{mode}/own", 0.0) for r in rels]
    other = [100 * per_relation[r].get(f"kn/{mode}/unrelated", 0.0) for r in rels]
    fig, ax = plt.subplots(figsize=(12, 3.2))
    x = torch.arange(len(rels)).numpy()
    ax.bar(x - 0.2, own, 0.4, label="own facts", color="#4c72b0")
    ax.bar(x + 0.2, other, 0.4, label="unrelated facts", color="#dd8452")
    ax.set_xticks(x, rels, rotation=90)
    ax.set_ylabel("relative change (%)")
    ax.set_title(f"{mode} knowledge neurons")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend()
    return fig


def completeness_plot(completeness: dict):
    """Per layer: mean |Σ_i Attr_i − (P(w̄) − P(0))| (quadrature error) beside mean |P(w̄) − P(0)|."""
    from quintet.core.plotting import plt

    error, span = completeness["error_per_layer"], completeness["span_per_layer"]
    fig, ax = plt.subplots(figsize=(8, 3))
    x = torch.arange(len(error)).numpy()
    ax.bar(x - 0.2, span, 0.4, label="|P(w̄) − P(0)|", color="#4c72b0")
    ax.bar(x + 0.2, error, 0.4, label="|Σ Attr − (P(w̄) − P(0))|", color="#c44e52")
    ax.set_xticks(x, [str(i + 1) for i in x], fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean over prompts")
    ax.set_title("Completeness of the attribution per layer")
    ax.legend()
    return fig


def neuron_effects(rows: Sequence[dict], n_layers: int):
    """Relative change of unrelated facts' correct probability when one knowledge neuron is
    suppressed, against its layer (red: neurons of facts of two or more relations)."""
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for shared, color, label in ((False, "#4c72b0", "knowledge neuron of one relation"),
                                 (True, "#c44e52", "knowledge neuron of several relations")):
        pick = [r for r in rows if r["inter_relation"] == shared]
        ax.scatter([r["layer"] + 1 for r in pick], [100 * r["change"] for r in pick], s=14, color=color, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlim(0.5, n_layers + 0.5)
    ax.set_xlabel("layer")
    ax.set_ylabel("unrelated facts: change of P (%)")
    ax.set_title("One knowledge neuron suppressed, other relations' prompts")
    ax.legend(fontsize=8)
    return fig
