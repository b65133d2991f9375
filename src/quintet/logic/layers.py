"""``LogicLayer`` and ``GroupSum`` (Petersen et al., NeurIPS 2022) and the network builder.

A logic layer is a pair (gate logits ``(out, 16)``, fixed wiring ``(out,)`` x 2). The wiring lives in
buffers, so ``state_dict`` and safetensors checkpoints keep it.
"""

from __future__ import annotations

import torch
from torch import nn

from quintet.core.errors import QuintetError, check_choice
from quintet.logic.functional import group_sum, logic_layer
from quintet.logic.gates import PASS_THROUGH_A
from quintet.logic.wiring import make_wiring

INITS = ("normal", "residual")


def init_logits(out_dim: int, init: str = "normal", residual_logit: float = 5.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``(out_dim, 16)`` gate logits.

    ``normal``: standard normal (the 2022 paper). ``residual``: zeros with ``residual_logit`` on the
    pass-through gate ``a`` (the residual initialisation of Petersen et al., NeurIPS 2024,
    arXiv 2411.04732; 5 gives the gate ``a`` about 91 % of the mass).
    """
    check_choice("initialisation", init, INITS)
    if init == "normal":
        return torch.randn(out_dim, 16, generator=generator)
    logits = torch.zeros(out_dim, 16)
    logits[:, PASS_THROUGH_A] = residual_logit
    return logits


class LogicLayer(nn.Module):
    """``out_dim`` two-input gates over ``in_dim`` inputs: ``(batch, in_dim) -> (batch, out_dim)``.

    Training mode mixes the 16 relaxed gates with ``softmax(logits)``; ``eval()`` uses each
    neuron's argmax gate, which on {0, 1} inputs is the discrete logic network.
    """

    def __init__(self, in_dim: int, out_dim: int, connections: str = "random", init: str = "normal",
                 grad_factor: float = 1.0, generator: torch.Generator | None = None):
        super().__init__()
        if grad_factor <= 0:
            raise QuintetError(f"grad_factor must be > 0, got {grad_factor}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.connections, self.init, self.grad_factor = connections, init, float(grad_factor)
        idx_a, idx_b = make_wiring(connections, in_dim, out_dim, generator)
        self.weights = nn.Parameter(init_logits(out_dim, init, generator=generator))
        self.register_buffer("idx_a", idx_a)
        self.register_buffer("idx_b", idx_b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise QuintetError(f"LogicLayer expects input of shape (batch, {self.in_dim}), got {tuple(x.shape)}")
        return logic_layer(x, self.weights, self.idx_a, self.idx_b, hard=not self.training,
                           grad_factor=self.grad_factor)

    def gates(self) -> torch.Tensor:
        """``(out_dim,)`` int64: the argmax gate of every neuron (the discretised layer)."""
        return self.weights.detach().argmax(-1)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, connections={self.connections}, grad_factor={self.grad_factor:g}"


class GroupSum(nn.Module):
    """``(batch, n) -> (batch, k)``: the sum of each of k contiguous groups, divided by ``tau``."""

    def __init__(self, k: int, tau: float = 1.0):
        super().__init__()
        if k < 1 or tau <= 0:
            raise QuintetError(f"GroupSum needs k >= 1 and tau > 0, got k={k}, tau={tau}")
        self.k, self.tau = k, float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.k:
            raise QuintetError(f"GroupSum(k={self.k}) needs a width divisible by {self.k}, got {x.shape[-1]}")
        return group_sum(x, self.k, self.tau)

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau:g}"


def logic_network(in_dim: int, width: int, depth: int, classes: int, tau: float = 1.0,
                  connections: str = "random", init: str = "normal", grad_factor: float = 1.0,
                  seed: int | None = None) -> nn.Sequential:
    """``depth`` logic layers of ``width`` gates then ``GroupSum(classes, tau)`` (the paper's
    randomly connected architecture)."""
    if depth < 1:
        raise QuintetError(f"depth must be >= 1, got {depth}")
    if width % classes:
        raise QuintetError(f"width {width} must be divisible by the number of classes {classes}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    dims = [in_dim] + [width] * depth
    layers = [LogicLayer(i, o, connections, init, grad_factor, generator) for i, o in zip(dims[:-1], dims[1:])]
    return nn.Sequential(*layers, GroupSum(classes, tau))
