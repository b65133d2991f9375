"""Convolutional logic trees and logical-OR pooling (Petersen et al., "Convolutional Differentiable
Logic Gate Networks", NeurIPS 2024, arXiv 2411.04732, Sec. 3).

A kernel is a complete binary tree of ``2**depth - 1`` learnable gates whose ``2**depth`` leaves
read fixed random positions of a ``k x k`` receptive field in two randomly chosen input channels;
the same tree slides over all positions. OR pooling takes the maximum, the relaxation of OR the
follow-up trains with; on {0, 1} it is exactly OR.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from quintet.core.errors import QuintetError
from quintet.logic.functional import neuron_coefficients
from quintet.logic.layers import init_logits


class ConvLogicTree(nn.Module):
    """``(B, C_in, H, W) -> (B, C_out, H_out, W_out)``: one logic tree per output channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, depth: int = 2,
                 stride: int = 1, padding: int = 0, init: str = "residual",
                 generator: torch.Generator | None = None):
        super().__init__()
        if min(in_channels, out_channels, kernel_size, depth, stride) < 1 or padding < 0:
            raise QuintetError("ConvLogicTree needs positive channels, kernel_size, depth, stride and padding >= 0")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.depth, self.stride, self.padding = kernel_size, depth, stride, padding
        leaves = 2 ** depth
        pair = torch.stack([torch.randperm(in_channels, generator=generator)[: min(2, in_channels)]
                            for _ in range(out_channels)])  # (out, 1 or 2) channels each tree reads
        which = torch.randint(0, pair.shape[1], (out_channels, leaves), generator=generator)
        channel = pair.gather(1, which)
        offset = torch.randint(0, kernel_size * kernel_size, (out_channels, leaves), generator=generator)
        self.register_buffer("leaf_index", channel * kernel_size * kernel_size + offset)  # into unfold rows
        self.levels = nn.ParameterList(
            nn.Parameter(init_logits(out_channels * 2 ** (depth - 1 - lvl), init, generator=generator)
                         .reshape(out_channels, 2 ** (depth - 1 - lvl), 16))
            for lvl in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise QuintetError(f"ConvLogicTree expects (batch, {self.in_channels}, H, W), got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        h_out, w_out = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        patches = F.unfold(x, k, padding=p, stride=s)  # (B, C*k*k, positions)
        values = patches[:, self.leaf_index.reshape(-1)].reshape(batch, self.out_channels, 2 ** self.depth, -1)
        for logits in self.levels:
            c = neuron_coefficients(logits, hard=not self.training).to(x.dtype).unsqueeze(-1)  # (out, n, 4, 1)
            a, b = values[:, :, 0::2], values[:, :, 1::2]
            values = c[:, :, 0] + c[:, :, 1] * a + c[:, :, 2] * b + c[:, :, 3] * a * b
        return values.reshape(batch, self.out_channels, h_out, w_out)

    def gate_count(self, height: int, width: int) -> int:
        """Physical gates when unrolled over an input of ``height x width``."""
        k, s, p = self.kernel_size, self.stride, self.padding
        positions = ((height + 2 * p - k) // s + 1) * ((width + 2 * p - k) // s + 1)
        return self.out_channels * (2 ** self.depth - 1) * positions

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, depth={self.depth}, "
                f"stride={self.stride}, padding={self.padding}")


class OrPool(nn.Module):
    """Logical-OR pooling: ``max`` over ``kernel_size x kernel_size`` windows."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)


def conv_logic_network(classes: int = 10, channels: tuple[int, int] = (32, 64), width: int = 4000,
                       depth: int = 2, tau: float = 10.0, seed: int | None = None,
                       init: str = "residual") -> nn.Sequential:
    """A small convolutional logic network for ``(B, 784)`` MNIST bits: two (tree, OR pool) stages,
    then ``depth`` randomly connected logic layers and ``GroupSum``."""
    from quintet.logic.layers import GroupSum, LogicLayer

    g = torch.Generator().manual_seed(seed) if seed is not None else None
    c1, c2 = channels
    flat = c2 * 7 * 7
    layers: list[nn.Module] = [nn.Unflatten(1, (1, 28, 28)), ConvLogicTree(1, c1, 3, 2, padding=1, init=init, generator=g),
                               OrPool(2), ConvLogicTree(c1, c2, 3, 2, padding=1, init=init, generator=g), OrPool(2),
                               nn.Flatten()]
    dims = [flat] + [width] * depth
    layers += [LogicLayer(i, o, "random", init, 1.0, g) for i, o in zip(dims[:-1], dims[1:])]
    return nn.Sequential(*layers, GroupSum(classes, tau))
