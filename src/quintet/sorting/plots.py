"""Figures: the sigmoid of every relaxation, and a heatmap of ``P`` for an example."""

from __future__ import annotations

import torch

from quintet.core.plotting import plt
from quintet.sorting.functional import diffsort
from quintet.sorting.relaxations import MONOTONIC, RELAXATIONS, swap_probability

__all__ = ["sigmoid_figure", "permutation_figure"]


def sigmoid_figure(steepness: float = 1.0, art_lambda: float = 0.25):
    """``f(beta x)`` of each relaxation on ``x in [-3, 3]`` and its derivative (log scale)."""
    x = torch.linspace(-3, 3, 1201, dtype=torch.float64, requires_grad=True)
    fig, (ax, axd) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in RELAXATIONS:
        y = swap_probability(x, name, steepness, art_lambda)
        (dy,) = torch.autograd.grad(y.sum(), x)
        style = "-" if name in MONOTONIC else "--"
        ax.plot(x.detach(), y.detach(), style, label=name)
        axd.semilogy(x.detach(), dy.clamp_min(1e-6), style, label=name)
    ax.set(title=f"relaxed swap weight f(beta x), beta={steepness:g}", xlabel="x = b - a")
    axd.set(title="derivative (monotonic ones solid)", xlabel="x = b - a")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def permutation_figure(x: torch.Tensor, network: str = "bitonic", relaxation: str = "cauchy",
                       steepness: float = 10.0):
    """Heatmap of ``P`` for one vector ``x (n,)``, beside the true permutation."""
    _, p = diffsort(x.double(), network=network, relaxation=relaxation, steepness=steepness)
    truth = torch.nn.functional.one_hot(torch.argsort(torch.argsort(x)), len(x)).double()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, mat, title in ((axes[0], p, f"P ({network}, {relaxation}, beta={steepness:g})"),
                           (axes[1], truth, "true permutation")):
        im = ax.imshow(mat.detach().numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set(title=title, xlabel="sorted position j", ylabel="input i")
    fig.colorbar(im, ax=axes, shrink=0.8)
    return fig
