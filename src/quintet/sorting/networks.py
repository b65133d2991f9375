"""Sorting-network layouts: which wire pairs each layer compares (ICML 2021, Sec. 4).

A layout is a list of layers; each layer is a set of disjoint comparators ``(a, b)`` with
``a < b``.  An ascending comparator puts the minimum on wire ``a``; a descending one (bitonic
merges of odd blocks) puts it on ``b``.

* **odd-even transposition** (any ``n``): ``n`` layers alternating the pairs ``(0,1), (2,3), ...``
  and ``(1,2), (3,4), ...``.  The reference package also lists "identity" comparators for the
  wire left out of a layer; they change nothing and are omitted here.
* **bitonic** (Batcher): ``log2(N) (log2(N) + 1) / 2`` layers on ``N = 2^ceil(log2 n)`` wires.
  As in the reference, the input occupies the *last* ``n`` wires.  Two ways to treat a
  comparator that touches exactly one of the ``N - n`` padding wires:

  - ``padding="reference"`` (diffsort 0.2.0): it becomes an identity.  This is the reference's
    layout, but the result is **not a sorting network for some n**: in the hard limit it leaves
    some inputs unsorted for the sizes in :data:`REFERENCE_UNSORTED` (22, 38, 42-46, 54, 70,
    74-78, 82-94, 102, 106-110, 118, ... up to 256; found with random inputs, and the reference
    package's own layout fails for exactly the same sizes);
  - ``padding="sentinel"``: the padding wires hold ``-inf``, so such a comparator is a fixed
    identity (ascending) or a fixed swap (descending).  Always a correct sorting network.
    Both agree whenever ``n`` is a power of two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from quintet.core.errors import QuintetError

SOFT, KEEP, SWAP = 0, 1, 2

#: ``n`` in 2..256 for which the bitonic ``padding="reference"`` layout does not sort (hard limit)
REFERENCE_UNSORTED = (
    22, 38, *range(42, 47), 54, 70, *range(74, 79), *range(82, 95), 102, *range(106, 111), 118, 134,
    *range(138, 143), *range(146, 159), *range(162, 191), 198, *range(202, 207), *range(210, 223), 230,
    *range(234, 239), 246,
)
PADDINGS = ("sentinel", "reference")

__all__ = ["NETWORKS", "PADDINGS", "REFERENCE_UNSORTED", "SOFT", "KEEP", "SWAP", "Layer", "SortingNetwork", "bitonic_network", "odd_even_network", "get_network",
           "network_names", "prune_to_outputs", "resolve_network"]

NETWORKS = ("odd_even", "bitonic")
_ALIASES = {"odd-even": "odd_even", "oddeven": "odd_even"}


@dataclass(frozen=True)
class Layer:
    """One layer: comparators ``a[i] < b[i]`` (int64 arrays), ``descending[i]`` (bool) and
    ``mode[i]`` (int8): ``SOFT`` (relaxed swap), ``KEEP`` (fixed identity) or ``SWAP`` (fixed swap;
    only with sentinel padding)."""

    a: np.ndarray
    b: np.ndarray
    descending: np.ndarray
    mode: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.mode is None:
            object.__setattr__(self, "mode", np.zeros(len(self.a), dtype=np.int8))

    def select(self, mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = self.mode == mode
        return self.a[keep], self.b[keep], self.descending[keep]

    def __len__(self) -> int:
        return len(self.a)


@dataclass(frozen=True)
class SortingNetwork:
    """A layout on ``size`` wires for ``n`` inputs placed on wires ``size - n .. size - 1``.

    ``stages`` (bitonic only): ``(block, stride)`` per layer, used by the structured fast path.
    """

    kind: str
    n: int
    size: int
    layers: tuple[Layer, ...]
    stages: tuple[tuple[int, int], ...] = field(default=())
    padding: str = "sentinel"

    @property
    def pad(self) -> int:
        return self.size - self.n

    @property
    def num_comparators(self) -> int:
        return sum(len(layer) for layer in self.layers)

    def hard_sort(self, values: np.ndarray) -> np.ndarray:
        """Run the network with exact swaps on ``values (..., n)`` (a check of the layout)."""
        x = np.asarray(values, dtype=np.float64)
        x = np.concatenate([np.full(x.shape[:-1] + (self.pad,), -np.inf), x], axis=-1)
        for layer in self.layers:
            xa, xb = x[..., layer.a], x[..., layer.b]
            lo, hi = np.minimum(xa, xb), np.maximum(xa, xb)
            d, mode = layer.descending, layer.mode
            new_a = np.where(mode == KEEP, xa, np.where(mode == SWAP, xb, np.where(d, hi, lo)))
            new_b = np.where(mode == KEEP, xb, np.where(mode == SWAP, xa, np.where(d, lo, hi)))
            x[..., layer.a], x[..., layer.b] = new_a, new_b
        return x[..., self.pad:]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise QuintetError(f"a sorting network needs n >= 2 inputs (an integer), got {n!r}")
    return int(n)


def odd_even_network(n: int) -> SortingNetwork:
    """Odd-even transposition sort: ``n`` layers, ``n (n - 1) / 2`` comparators."""
    n = _check_n(n)
    layers = []
    for layer in range(n):
        a = np.arange(layer % 2, n - 1, 2, dtype=np.int64)
        layers.append(Layer(a, a + 1, np.zeros(len(a), dtype=bool)))
    return SortingNetwork("odd_even", n, n, tuple(layers))


def bitonic_network(n: int, padding: str = "sentinel") -> SortingNetwork:
    """Bitonic sort on ``N = 2^ceil(log2 n)`` wires, padding on the first ``N - n`` wires.

    Block ``k`` (``k = 0 .. K-1``) merges groups of ``2^(k+1)`` wires in layers of stride
    ``2^k, ..., 2, 1``; a group with odd index ``a // 2^(k+1)`` is merged in descending order.
    Every layer lists all ``N / 2`` comparators in increasing ``a`` (the structured fast path
    relies on it); ``mode`` marks those that touch padding (see the module docstring).
    """
    n = _check_n(n)
    if padding not in PADDINGS:
        raise QuintetError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")
    blocks = max(1, math.ceil(math.log2(n)))
    size = 2**blocks
    pad = size - n
    layers, stages = [], []
    is_pad = np.arange(size) < pad
    for block in range(blocks):
        for step in range(block + 1):
            m = 2 ** (block - step)
            lo = np.array([i + j for i in range(0, size, 2 * m) for j in range(m)], dtype=np.int64)
            hi = lo + m
            desc = (lo // 2 ** (block + 1)) % 2 == 1
            mode = np.full(len(lo), SOFT, dtype=np.int8)
            if padding == "reference":
                mode[(lo < pad) | (hi < pad)] = KEEP
            else:
                pa, pb = is_pad[lo], is_pad[hi]
                mode[pa & pb] = KEEP
                # the -inf sentinel ends on the minimum's wire: a for ascending, b for descending
                mode[pa & ~pb] = np.where(desc[pa & ~pb], SWAP, KEEP)
                mode[~pa & pb] = np.where(desc[~pa & pb], KEEP, SWAP)
                swap = mode == SWAP
                is_pad[lo[swap]], is_pad[hi[swap]] = is_pad[hi[swap]], is_pad[lo[swap]]
            layers.append(Layer(lo, hi, desc, mode))
            stages.append((block, m))
    return SortingNetwork("bitonic", n, size, tuple(layers), tuple(stages), padding)


def network_names() -> list[str]:
    return list(NETWORKS)


def resolve_network(kind: str) -> str:
    """The canonical name (``odd_even`` or ``bitonic``) of ``kind`` or one of its aliases."""
    name = _ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if name not in NETWORKS:
        raise QuintetError(f"unknown sorting network {kind!r}; expected one of: {', '.join(NETWORKS)}")
    return name


def get_network(kind: str, n: int, padding: str = "sentinel") -> SortingNetwork:
    """The layout ``kind`` (``odd_even`` or ``bitonic``) for ``n`` inputs (cached)."""
    name = resolve_network(kind)
    if padding not in PADDINGS:
        raise QuintetError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")
    key = (name, _check_n(n), padding if name == "bitonic" else "sentinel")
    if key not in _CACHE:
        _CACHE[key] = odd_even_network(key[1]) if name == "odd_even" else bitonic_network(key[1], padding)
    return _CACHE[key]


_CACHE: dict[tuple[str, int, str], SortingNetwork] = {}


def prune_to_outputs(network: SortingNetwork, outputs: np.ndarray) -> SortingNetwork:
    """Keep only comparators whose result can reach the wires ``outputs`` (Petersen et al.,
    ICML 2022, "Differentiable Top-k Classification Learning", Sec. 3).

    Walking the layers backwards, a wire is *live* if it feeds a live wire later; a comparator is
    kept when one of its two wires is live (then both become live).  The values on ``outputs``
    are unchanged; ``stages`` is dropped (the pruned network runs on the generic path).
    """
    live = np.zeros(network.size, dtype=bool)
    live[np.asarray(outputs, dtype=np.int64)] = True
    kept = []
    for layer in reversed(network.layers):
        keep = (live[layer.a] | live[layer.b]) & (layer.mode != KEEP)
        live[layer.a[keep]] = True
        live[layer.b[keep]] = True
        kept.append(Layer(layer.a[keep], layer.b[keep], layer.descending[keep], layer.mode[keep]))
    layers = tuple(layer for layer in reversed(kept) if len(layer))
    return SortingNetwork(network.kind + "_pruned", network.n, network.size, layers, (), network.padding)
