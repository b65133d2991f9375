"""Figures: the distributions' CDFs, a gallery of renderings, a pose trajectory, shape fits."""

from __future__ import annotations

from typing import Sequence

import torch

from quintet.core.plotting import plt
from quintet.render.distributions import DISTRIBUTIONS, cdf
from quintet.render.rasterize import RenderSettings, render


def cdf_figure():
    """Every distribution's standardised CDF F(z), grouped by family."""
    z = torch.linspace(-4, 4, 801, dtype=torch.float64)
    families = list(dict.fromkeys(d.family for d in DISTRIBUTIONS.values()))
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.2), sharey=True)
    for ax, family in zip(axes, families):
        for d in DISTRIBUTIONS.values():
            if d.family == family:
                ax.plot(z, cdf(z, d.name), label=d.name)
        ax.set_title(family)
        ax.set_xlabel("z = s / τ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("coverage F(z)")
    fig.tight_layout()
    return fig


def gallery_figure(face_vertices: torch.Tensor, rows: Sequence[tuple[str, float, bool]],
                   tconorms: Sequence[tuple[str, float | None]], image_size: int = 96):
    """Opacity of one view under each (distribution, τ, squared) row × (T-conorm, p) column."""
    fig, axes = plt.subplots(len(rows), len(tconorms), figsize=(2.1 * len(tconorms), 2.1 * len(rows)))
    for i, (dist, tau, squared) in enumerate(rows):
        for j, (name, p) in enumerate(tconorms):
            settings = RenderSettings(image_size=image_size, dist=dist, tau=tau, squared=squared, tconorm=name, p=p,
                                      blend="none")
            with torch.no_grad():
                image = render(face_vertices, settings)[0]
            ax = axes[i][j]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name + (f" p={p:g}" if p is not None else ""), fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{dist}\nτ={tau:g}{' sq' if squared else ''}", fontsize=8)
    fig.tight_layout()
    return fig


def trajectory_figure(result: dict, title: str):
    """Silhouettes of one pose along its optimisation, then the target."""
    frames = result["trajectory"]
    fig, axes = plt.subplots(1, len(frames) + 1, figsize=(1.9 * (len(frames) + 1), 2.3))
    for ax, frame in zip(axes, frames):
        err = (frame["pose"][1] ** 2 + frame["pose"][2] ** 2) ** 0.5
        ax.imshow(frame["silhouette"], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"step {frame['step']}\nerr {err:.0f}°, τ={frame['tau']:.0e}", fontsize=7)
    axes[-1].imshow(result["goal"], cmap="gray", vmin=0, vmax=1)
    axes[-1].set_title("target", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def success_figure(rows: list[dict]):
    """Success rate per (distribution, T-conorm) and initial angle range, as grouped bars."""
    labels = list(dict.fromkeys(f"{r['dist']}\n{r['tconorm']}" for r in rows))
    ranges = list(dict.fromkeys(r["range"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 3.4))
    width = 0.8 / len(ranges)
    for k, angle_range in enumerate(ranges):
        values = [next((r["success_rate"] for r in rows if f"{r['dist']}\n{r['tconorm']}" == lab
                        and r["range"] == angle_range), 0.0) for lab in labels]
        ax.bar([i + k * width for i in range(len(labels))], values, width, label=f"initial {angle_range}°")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, fontsize=7)
    ax.set_ylabel("success rate (error < 5°)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def shape_figure(pred: torch.Tensor, goal: torch.Tensor, title: str, views: Sequence[int] = (0, 6, 12, 18)):
    """Fitted vs target silhouettes for a few views."""
    fig, axes = plt.subplots(2, len(views), figsize=(1.9 * len(views), 4))
    for j, v in enumerate(views):
        axes[0][j].imshow(pred[v], cmap="gray", vmin=0, vmax=1)
        axes[1][j].imshow(goal[v], cmap="gray", vmin=0, vmax=1)
        axes[0][j].set_title(f"view {v}", fontsize=8)
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("fitted")
    axes[1][0].set_ylabel("target")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
