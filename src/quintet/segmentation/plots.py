"""Figures: predictions vs ground truth, memory attention per class, results bars."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from quintet.core.errors import QuintetError

# CamVid's SegNet palette (Sky ... Bicyclist), void black.
CAMVID_PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                           [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                           [0, 128, 192]], dtype=np.uint8)


# Cityscapes' 19 training classes (cityscapesScripts' labels.py), road ... bicycle.
CITYSCAPES_PALETTE = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
                               [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
                               [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
                               [0, 80, 100], [0, 0, 230], [119, 11, 32]], dtype=np.uint8)


def palette_for(num_classes: int) -> np.ndarray:
    """The colours of a model's classes: Cityscapes' for the 19-class benchmarks, CamVid's (its first
    ``num_classes`` colours) for up to 11 classes."""
    if num_classes == len(CITYSCAPES_PALETTE):
        return CITYSCAPES_PALETTE
    if num_classes <= len(CAMVID_PALETTE):
        return CAMVID_PALETTE[:num_classes]
    raise QuintetError(f"no colour palette for {num_classes} classes (known: up to 11 CamVid classes, or 19 Cityscapes)")


def colorize(labels: np.ndarray, palette: np.ndarray = CAMVID_PALETTE) -> np.ndarray:
    """``(H, W)`` class ids -> ``(H, W, 3)`` colours; ids outside the palette (void) are black."""
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    ok = labels < len(palette)
    out[ok] = palette[labels[ok]]
    return out


def prediction_grid(images: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray], titles: Sequence[str],
                    class_names: Sequence[str] | None = None):
    """A figure: one row per image; columns image, ground truth, each method's prediction; below
    them a legend of the ``class_names`` colours."""
    from matplotlib.patches import Patch

    from quintet.core.plotting import plt

    n, cols = len(images), 2 + len(preds)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        panels = [images[i], colorize(truth[i])] + [colorize(p[i]) for p in preds.values()]
        names = ["image", "ground truth"] + list(preds)
        for j, (panel, name) in enumerate(zip(panels, names)):
            ax = axes[i, j]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
        axes[i, 0].set_ylabel(titles[i], fontsize=7)
    fig.tight_layout()
    if class_names:
        handles = [Patch(facecolor=np.asarray(color) / 255, edgecolor="0.4", label=name)
                   for name, color in zip(class_names, CAMVID_PALETTE)]
        fig.subplots_adjust(bottom=0.45 / fig.get_figheight())  # room for one legend row
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)
    return fig


def attention_maps(image: np.ndarray, attention: np.ndarray, class_names: Sequence[str]):
    """The image and, per memory slot, its read attention ``(h, w)`` over the image."""
    from quintet.core.plotting import plt

    k = attention.shape[-1]
    cols = 4
    rows = int(np.ceil((k + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 1.9 * rows), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=8)
    h, w = image.shape[:2]
    vmax = float(attention.max())
    for c in range(k):
        ax = axes[c + 1]
        ax.imshow(image, alpha=0.35)
        heat = ax.imshow(attention[..., c], cmap="magma", vmin=0, vmax=vmax, alpha=0.75, extent=(0, w, h, 0),
                  interpolation="bilinear")
        ax.set_title(class_names[c], fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[k + 1:]:
        ax.axis("off")
    fig.tight_layout()
    if k:
        fig.colorbar(heat, ax=axes.tolist(), fraction=0.025, pad=0.02, label="read attention", format="%.2f")
    return fig


def miou_bars(rows: Sequence[dict], targets: Sequence[str]):
    """Grouped bars of mean ± std unseen-domain mIoU per method."""
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(rows), 3.2))
    width = 0.8 / len(targets)
    x = np.arange(len(rows))
    for i, t in enumerate(targets):
        means = [100 * r[f"{t}_mean"] for r in rows]
        stds = [100 * r[f"{t}_std"] for r in rows]
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=2, label=t)
    ax.set_xticks(x)
    ax.set_xticklabels([r["method"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("unseen-domain mIoU (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def convergence_plot(budgets: Sequence[int], curves: dict[str, np.ndarray], chosen: int):
    """mIoU (%) against the step budget: ``curves`` maps a label to ``(seeds, budgets)`` fractions;
    each label's mean is drawn with its seeds as dots; a dashed line marks the ``chosen`` budget."""
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for label, values in curves.items():
        v = 100 * np.asarray(values, dtype=float)
        line, = ax.plot(budgets, v.mean(0), marker="o", label=label)
        for row in v:
            ax.scatter(budgets, row, s=10, color=line.get_color(), alpha=0.5)
    ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"steps used ({chosen})")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(budgets))
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("training steps (poly schedule ends at each budget)")
    ax.set_ylabel("ERM mIoU (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["CAMVID_PALETTE", "attention_maps", "colorize", "convergence_plot", "miou_bars", "prediction_grid"]
