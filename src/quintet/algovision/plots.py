"""Figures of the reproduction: sorting accuracy per n, terrain paths, edit-distance training curve."""

from __future__ import annotations

import numpy as np
import torch

from quintet.algovision.shortest_path import relaxed_shortest_path
from quintet.algovision.terrain import TerrainMaps
from quintet.core.plotting import plt

__all__ = ["sorting_figure", "path_figure", "edit_figure"]


def sorting_figure(rows: list[dict]):
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sizes = sorted({r["n"] for r in rows})
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        for ax, key in zip(axes, ("exact_match", "element_wise")):
            values = [100 * next(r[key] for r in rows if r["method"] == method and r["n"] == n) for n in sizes]
            ax.bar(np.arange(len(sizes)) + i * width, values, width, label=method)
    for ax, title in zip(axes, ("exact match %", "element-wise %")):
        ax.set_xticks(np.arange(len(sizes)) + width * (len(methods) - 1) / 2, [f"n = {n}" for n in sizes])
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle("sorting supervision, four-digit MNIST (test sets)", y=1.04)
    return fig


def path_figure(test: TerrainMaps, models: dict, beta: float, index: int = 0):
    """One test map: image, true costs and path, and each model's predicted costs with the relaxed path."""
    images = test.images[index:index + 1]
    fig, axes = plt.subplots(2, 1 + len(models), figsize=(3 * (1 + len(models)), 6))
    axes[0, 0].imshow(images[0].permute(1, 2, 0).numpy())
    axes[0, 0].set_title("terrain")
    axes[1, 0].imshow(test.costs[index].numpy(), cmap="viridis")
    ys, xs = torch.nonzero(test.paths[index], as_tuple=True)
    axes[1, 0].scatter(xs.numpy(), ys.numpy(), c="red", s=14)
    axes[1, 0].set_title("true costs and path")
    with torch.no_grad():
        for j, (name, model) in enumerate(models.items(), 1):
            cost = model(images)
            path, _ = relaxed_shortest_path(cost, beta)
            axes[0, j].imshow(cost[0].numpy(), cmap="viridis")
            axes[0, j].set_title(f"{name}: predicted costs")
            axes[1, j].imshow(path[0].numpy(), cmap="magma", vmin=0, vmax=1)
            axes[1, j].set_title(f"{name}: relaxed path")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def edit_figure(curve: list[dict]):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = [c["step"] for c in curve]
    ax.plot(steps, [100 * c["char_accuracy"] for c in curve], marker="o", label="character accuracy % (matched)")
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy %")
    twin = ax.twinx()
    twin.plot(steps, [c["distance_mae"] for c in curve], color="C1", marker="s", label="distance MAE")
    twin.set_ylabel("hard distance MAE")
    ax.set_title("edit-distance supervision")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8)
    return fig
