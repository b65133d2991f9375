"""The discretised network as a netlist, and its bit-parallel NumPy executor.

A :class:`GateNetwork` holds, per layer, each gate's two source indices and its gate id (the argmax
of the trained logits), plus the class count and ``tau`` of the final ``GroupSum``. Inputs are
packed 64 samples per ``uint64`` word (sample ``s`` is bit ``s % 64`` of word ``s // 64``), every
gate is evaluated on whole words, and the class sums are counts of set bits per sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from quintet.core.errors import QuintetError
from quintet.logic.gates import truth_tables
from quintet.logic.layers import GroupSum, LogicLayer

ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class GateLayer:
    """One layer of discrete gates: ``out[i] = gate_ops[i](x[src_a[i]], x[src_b[i]])``."""

    src_a: np.ndarray  # (width,) int32
    src_b: np.ndarray  # (width,) int32
    ops: np.ndarray    # (width,) uint8, gate ids 0..15

    @property
    def width(self) -> int:
        return len(self.ops)


@dataclass(frozen=True)
class GateNetwork:
    """A discretised logic gate network: ``in_dim`` binary inputs, gate layers, ``classes`` groups."""

    in_dim: int
    layers: tuple[GateLayer, ...]
    classes: int
    tau: float = 1.0

    @property
    def gate_count(self) -> int:
        return sum(layer.width for layer in self.layers)

    @property
    def group_size(self) -> int:
        return self.layers[-1].width // self.classes

    def digest(self) -> str:
        """sha256 of the structure (wiring, gates, classes): equal digests = equal networks."""
        h = hashlib.sha256(f"{self.in_dim}:{self.classes}:{len(self.layers)}".encode())
        for layer in self.layers:
            for array in (layer.src_a, layer.src_b, layer.ops):
                h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    @classmethod
    def from_model(cls, model: nn.Module) -> "GateNetwork":
        """Extract the argmax gates and wiring from a ``Sequential`` of ``LogicLayer`` s and a final
        ``GroupSum`` (``Flatten`` layers are skipped)."""
        modules = list(model) if isinstance(model, nn.Sequential) else [model]
        layers, in_dim, classes, tau = [], None, None, 1.0
        for module in modules:
            if isinstance(module, LogicLayer):
                if classes is not None:
                    raise QuintetError("a GroupSum must be the last layer of a compiled network")
                in_dim = module.in_dim if in_dim is None else in_dim
                layers.append(GateLayer(module.idx_a.cpu().numpy().astype(np.int32),
                                        module.idx_b.cpu().numpy().astype(np.int32),
                                        module.gates().cpu().numpy().astype(np.uint8)))
            elif isinstance(module, GroupSum):
                classes, tau = module.k, module.tau
            elif not isinstance(module, (nn.Flatten, nn.Unflatten)):
                raise QuintetError(f"cannot compile a {type(module).__name__}: only LogicLayer, Flatten "
                                   "and a final GroupSum are compiled")
        if not layers or classes is None:
            raise QuintetError("a compiled network needs at least one LogicLayer and a final GroupSum")
        if layers[-1].width % classes:
            raise QuintetError(f"last layer width {layers[-1].width} is not divisible by {classes} classes")
        return cls(int(in_dim), tuple(layers), int(classes), float(tau))


def check_binary_input(x: np.ndarray | torch.Tensor, in_dim: int, scan_bytes: bool = True) -> np.ndarray:
    """``(N, in_dim)`` 0/1 data as a C-contiguous uint8 array; anything else raises. ``scan_bytes=False``
    leaves the values of uint8 input unchecked (for a reader that checks them itself)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != in_dim:
        raise QuintetError(f"a compiled network expects input of shape (N, {in_dim}), got {x.shape}")
    if x.dtype == np.bool_:
        return np.ascontiguousarray(x).view(np.uint8)
    if x.dtype == np.uint8:  # one pass: the common case of packed-ready bytes
        if scan_bytes and x.size and x.max() > 1:
            raise QuintetError(f"a compiled network takes binary input (0/1 or bool); found the value {x.max().item()!r}")
        return np.ascontiguousarray(x)
    binary = (x == 0) | (x == 1)
    if not binary.all():
        bad = x[~binary].flat[0]
        raise QuintetError(f"a compiled network takes binary input (0/1 or bool); found the value {bad.item()!r}")
    return np.ascontiguousarray(x, dtype=np.uint8)


def anf_masks(ops: np.ndarray) -> np.ndarray:
    """``(4, width, 1)`` uint64 masks (all zeros or all ones) of each gate's algebraic normal form
    ``k0 ^ k1 a ^ k2 b ^ k3 ab``."""
    table = truth_tables().numpy().astype(np.uint8)[ops]  # (width, 4): outputs for AB = 00, 01, 10, 11
    f00, f01, f10, f11 = table.T
    anf = np.stack([f00, f00 ^ f10, f00 ^ f01, f00 ^ f01 ^ f10 ^ f11])
    return np.where(anf.astype(bool), ALL_ONES, np.uint64(0))[..., None]


def pack_bits(x: np.ndarray) -> np.ndarray:
    """``(N, D)`` uint8 0/1 -> ``(D, ceil(N / 64))`` uint64, sample ``s`` at bit ``s % 64``."""
    n = x.shape[0]
    words = max(1, -(-n // 64))
    packed = np.packbits(x.T, axis=1, bitorder="little")
    padded = np.zeros((x.shape[1], words * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view(np.uint64)


def class_counts_numpy(net: GateNetwork, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(N, classes)`` int32: the discretised network's GroupSum counts, with NumPy on packed bits."""
    data = check_binary_input(x, net.in_dim)
    n = data.shape[0]
    bits = pack_bits(data)
    for layer in net.layers:
        k0, k1, k2, k3 = anf_masks(layer.ops)
        a, b = bits[layer.src_a], bits[layer.src_b]
        bits = k0 ^ (k1 & a) ^ (k2 & b) ^ (k3 & a & b)
    unpacked = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :n]
    counts = unpacked.reshape(net.classes, net.group_size, n).sum(1, dtype=np.int32)
    return np.ascontiguousarray(counts.T)


def discretize(model: nn.Module) -> GateNetwork:
    """The discrete circuit of a trained network: each neuron's argmax gate and its wiring."""
    return GateNetwork.from_model(model)
