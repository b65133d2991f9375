"""Compiled bit-parallel inference and standalone C export of a discretised logic gate network
(Petersen et al., "Deep Differentiable Logic Gate Networks", NeurIPS 2022, arXiv 2210.08277).

The generated C holds the netlist as constant tables and one generic evaluator, so compile time stays
at seconds even for 48 K gates. Gates that no class sum depends on are dropped, and each layer's
gates are sorted by gate id (the last layer's inside each class group) and renumbered, so that a
layer is a few runs of one branch-free loop each, writing its outputs in order (:func:`layout`).
The evaluator takes blocks of ``64 * WORDS`` samples: the 0/1 input bytes are bit-transposed (eight
rows become one byte per feature, then 8 x 8 byte tiles are transposed) and checked for 0/1 on the
way, each gate is one ``WORDS``-word vector operation, and each class group is summed by a
carry-save (Harley-Seal) adder tree into bit planes that are added per sample.
The shared library is cached under ``~/.cache/quintet/logic/<sha256 of source, flags, host>.so``; when no
C compiler is found, :class:`CompiledLogicNet` falls back to the NumPy executor of
:mod:`quintet.logic.netlist`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quintet.core.errors import QuintetError
from quintet.core.io import atomic_write_text
from quintet.logic.netlist import GateNetwork, anf_masks, check_binary_input, class_counts_numpy

WORDS = 8  # 64-bit words per block: 512 samples are evaluated together
CFLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c99")  # built where it runs
PORTABLE_CFLAGS = ("-O2", "-shared", "-fPIC", "-std=c99")  # when -march=native is refused
_C_CALL = threading.Lock()  # the C evaluator works in static buffers, one call at a time

# C expression of each gate id over blocks A[w] and B[w] (ids as in quintet.logic.gates).
GATE_C = (
    "(lgn_block){0}", "A[w] & B[w]", "A[w] & ~B[w]", "A[w]", "B[w] & ~A[w]", "B[w]", "A[w] ^ B[w]", "A[w] | B[w]",
    "~(A[w] | B[w])", "~(A[w] ^ B[w])", "~B[w]", "A[w] | ~B[w]", "~A[w]", "~A[w] | B[w]",
    "~(A[w] & B[w])", "~(lgn_block){0}",
)
_K0, _K1, _K2, _K3 = anf_masks(np.arange(16)).astype(bool)[..., 0]
READS_A, READS_B = _K1 | _K3, _K2 | _K3  # whether each gate id depends on its input a / b


@dataclass(frozen=True)
class Layout:
    """The netlist as the C evaluator runs it: gates no class sum depends on are dropped, and each
    layer's gates are sorted (last layer: by class group first) by gate id, then by sources, and
    renumbered in that order, so every layer writes its outputs sequentially and each run of equal
    gate ids is one branch-free loop."""

    src_a: np.ndarray       # (gates,) source of every kept gate in the previous layer's new order
    src_b: np.ndarray       # (gates,) likewise; a source the gate ignores is 0
    run_op: np.ndarray      # (runs,) gate id of each run of consecutive equal gates
    run_end: np.ndarray     # (runs,) index one past each run's last gate (into src_a / src_b)
    layer_runs: np.ndarray  # (layers + 1,) first run of each layer (the last entry: the run count)
    widths: tuple[int, ...]  # kept gates per layer


def layout(net: GateNetwork) -> Layout:
    """Dead-gate elimination and the per-layer gate order of :class:`Layout`."""
    keep = [np.ones(net.layers[-1].width, dtype=bool)]
    for layer, prev in zip(net.layers[:0:-1], net.layers[-2::-1]):
        used = np.zeros(prev.width, dtype=bool)
        used[layer.src_a[keep[0] & READS_A[layer.ops]]] = True
        used[layer.src_b[keep[0] & READS_B[layer.ops]]] = True
        keep.insert(0, used)
    position = np.arange(net.in_dim)  # new index of each output of the previous layer
    src_a, src_b, run_op, run_end, layer_runs, total = [], [], [], [], [0], 0
    for i, (layer, kept) in enumerate(zip(net.layers, keep)):
        gates = np.flatnonzero(kept)
        ops = layer.ops[gates].astype(np.int64)
        a = np.where(READS_A[ops], position[layer.src_a[gates]], 0)
        b = np.where(READS_B[ops], position[layer.src_b[gates]], 0)
        key = ops + 16 * (gates // net.group_size) if i == len(net.layers) - 1 else ops
        order = np.lexsort((b, a, key))
        src_a.append(a[order])
        src_b.append(b[order])
        starts = np.flatnonzero(np.diff(key[order], prepend=-1))
        run_op.append(ops[order][starts])
        run_end.append(total + np.append(starts[1:], len(gates))[: len(starts)])
        layer_runs.append(layer_runs[-1] + len(starts))
        total += len(gates)
        position = np.zeros(layer.width, dtype=np.int64)
        position[gates[order]] = np.arange(len(gates))
    return Layout(np.concatenate(src_a), np.concatenate(src_b), np.concatenate(run_op),
                  np.concatenate(run_end), np.array(layer_runs), tuple(int(k.sum()) for k in keep))


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    body = ",".join(map(str, values.tolist()))
    return f"static const {ctype} {name}[{max(1, len(values))}] = {{{body or '0'}}};\n"


def c_source(net: GateNetwork, words: int = WORDS) -> str:
    """Standalone C99 source of the discretised network.

    API: ``int lgn_class_counts(const uint8_t *x, size_t n, int32_t *counts)`` with ``x`` the
    ``n x LGN_INPUTS`` 0/1 bytes (row-major) and ``counts`` the ``n x LGN_CLASSES`` GroupSum counts
    (divide by ``LGN_TAU`` for the PyTorch model's outputs; the prediction is the first argmax). It
    returns 0, or 1 when a byte of ``x`` is neither 0 nor 1 (``counts`` is then meaningless).
    """
    lay = layout(net)
    index = "uint16_t" if max(net.in_dim, *lay.widths) <= 1 << 16 else "uint32_t"
    group = net.group_size
    planes = max(1, (group // 16).bit_length())  # of the counter of sixteens
    cases = "\n".join(
        f"      case {op}: for (; g < e; ++g, O += LGN_LANES) {{ {'A_PTR; ' * int(READS_A[op])}{'B_PTR; ' * int(READS_B[op])}"
        f"for (int w = 0; w < LGN_LANES; ++w) O[w] = {expr}; }} break;" for op, expr in enumerate(GATE_C))
    return f"""/* Discretised differentiable logic gate network (Petersen et al., NeurIPS 2022), generated by quintet.
   {net.gate_count} gates in {len(net.layers)} layers ({sum(lay.widths)} evaluated, the rest reach no class sum),
   {net.in_dim} inputs, {net.classes} classes, tau = {net.tau:g}.
   sha256 of the netlist: {net.digest()} */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LGN_INPUTS {net.in_dim}
#define LGN_BYTES {-(-net.in_dim // 8)}
#define LGN_CLASSES {net.classes}
#define LGN_LAYERS {len(net.layers)}
#define LGN_GROUP {group}
#define LGN_TAU {net.tau!r}
#define LGN_W {words}
#define LGN_MAX_WIDTH {max(net.in_dim, *lay.widths)}
#define LGN_PLANES {planes}
#if defined(__GNUC__)
#define LGN_ALIGNED __attribute__((aligned(64)))
#else
#define LGN_ALIGNED
#endif

{_c_array(index, "lgn_src_a", lay.src_a)}{_c_array(index, "lgn_src_b", lay.src_b)}{_c_array("uint8_t", "lgn_run_op", lay.run_op)}{_c_array("int32_t", "lgn_run_end", lay.run_end)}{_c_array("int32_t", "lgn_layer_runs", lay.layer_runs)}{_c_array("int32_t", "lgn_layer_gate", np.cumsum((0,) + lay.widths))}
/* A gate acts on LGN_W words at once: one vector where the compiler has vector types (then no loop
   across gates is vectorised into gathers), else a loop over the words. */
#if defined(__GNUC__)
typedef uint64_t lgn_block __attribute__((vector_size(8 * LGN_W), may_alias));
#define LGN_LANES 1
#else
typedef uint64_t lgn_block;
#define LGN_LANES LGN_W
#endif
/* Swap the tiles' off-diagonal halves: words i and i + d, bits shifted by s. */
#define LGN_TILE_SWAP(d, s, mask) \
  for (int i = 0; i < 8; ++i) if (!(i & d)) for (int q = 0; q < LGN_BYTES; ++q) {{ \
    const uint64_t u = ((t[i][q] >> s) ^ t[i + d][q]) & mask; t[i][q] ^= u << s; t[i + d][q] ^= u; }}
#define A_PTR const lgn_block *A = in + (size_t)lgn_src_a[g] * LGN_LANES
#define B_PTR const lgn_block *B = in + (size_t)lgn_src_b[g] * LGN_LANES

/* One layer: its runs of equal gate ids in order, each gate writing the next LGN_W words of out. */
static void lgn_layer(const lgn_block *restrict in, lgn_block *restrict out, int layer) {{
  int32_t g = lgn_layer_gate[layer];
  lgn_block *O = out;
  for (int32_t r = lgn_layer_runs[layer]; r < lgn_layer_runs[layer + 1]; ++r) {{
    const int32_t e = lgn_run_end[r];
    switch (lgn_run_op[r]) {{
{cases}
    }}
  }}
}}

/* Bit-transpose 64 rows of 0/1 bytes (x: row-major, readable 8 bytes past its last row's features)
   into word w of each feature's LGN_W words: eight rows at a time become one byte per feature
   (bit r = row r), then each 8 x 8 byte tile is transposed so that a feature's eight bytes meet.
   Returns the OR of every 8 bytes read (a bit outside 0x01 in a byte: a value other than 0 and 1). */
static uint64_t lgn_pack64(const uint8_t *x, uint64_t *bits, size_t w) {{
  uint64_t t[8][LGN_BYTES] LGN_ALIGNED, seen = 0;
  for (int i = 0; i < 8; ++i)
    for (int q = 0; q < LGN_BYTES; ++q) {{
      uint64_t acc = 0;
      for (int r = 0; r < 8; ++r) {{
        uint64_t v;
        memcpy(&v, x + (size_t)(8 * i + r) * LGN_INPUTS + 8 * q, 8);
        seen |= v;
        acc |= (v & 0x0101010101010101ULL) << r;
      }}
      t[i][q] = acc;
    }}
  LGN_TILE_SWAP(4, 32, 0x00000000FFFFFFFFULL)
  LGN_TILE_SWAP(2, 16, 0x0000FFFF0000FFFFULL)
  LGN_TILE_SWAP(1, 8, 0x00FF00FF00FF00FFULL)
  for (int q = 0; q < LGN_BYTES; ++q)
    for (int j = 0; j < 8 && 8 * q + j < LGN_INPUTS; ++j) bits[(size_t)(8 * q + j) * LGN_W + w] = t[j][q];
  return seen;
}}

/* n <= 64 * LGN_W samples -> LGN_INPUTS x LGN_W words, sample s at bit s % 64 of word s / 64.
   A group of fewer than 64 rows, or the one holding the last row, goes through a zero-padded copy. */
static uint64_t lgn_pack(const uint8_t *x, size_t n, int last, uint64_t *bits) {{
  static uint8_t pad[64 * LGN_INPUTS + 8];
  uint64_t seen = 0;
  for (size_t w = 0; w < LGN_W; ++w) {{
    const size_t s0 = 64 * w, m = n <= s0 ? 0 : n - s0 < 64 ? n - s0 : 64;
    if (m == 64 && !(last && s0 + 64 == n)) {{
      seen |= lgn_pack64(x + s0 * LGN_INPUTS, bits, w);
    }} else {{
      memset(pad, 0, sizeof pad);
      if (m) memcpy(pad, x + s0 * LGN_INPUTS, m * LGN_INPUTS);
      seen |= lgn_pack64(pad, bits, w);
    }}
  }}
  return seen;
}}

#define CSA(h, l, a, b, c) do {{ const lgn_block u_ = (a) ^ (b); h = ((a) & (b)) | (u_ & (c)); l = u_ ^ (c); }} while (0)
#define CSA4(out, w, x0, x1, x2, x3) do {{ lgn_block a_, b_; CSA(a_, tree[0][w], tree[0][w], x0, x1); \
  CSA(b_, tree[0][w], tree[0][w], x2, x3); CSA(out, tree[1][w], tree[1][w], a_, b_); }} while (0)

/* planes[0 .. k) += x, one bit per sample: a ripple-carry vertical counter. */
static void lgn_ripple(lgn_block (*planes)[LGN_LANES], int k, const lgn_block *x) {{
  for (int w = 0; w < LGN_LANES; ++w) {{
    lgn_block carry = x[w];
    for (int p = 0; p < k; ++p) {{
      const lgn_block next = planes[p][w] & carry;
      planes[p][w] ^= carry;
      carry = next;
    }}
  }}
}}

/* sums[s] += bit s of the plane << shift, for the 64 * LGN_W samples of a block (in 32-bit halves,
   which vectorise as 32-bit lanes). */
static void lgn_add_plane(int32_t *restrict sums, const lgn_block *plane, int shift) {{
  uint64_t words[LGN_W];
  memcpy(words, plane, sizeof words);
  for (int h = 0; h < 2 * LGN_W; ++h) {{
    const uint32_t half = (uint32_t)(words[h / 2] >> (32 * (h % 2)));
    for (int b = 0; b < 32; ++b) sums[32 * h + b] += (int32_t)((half >> b) & 1u) << shift;
  }}
}}

/* counts[s * LGN_CLASSES + c] for the n samples of one block. Per class group, a carry-save
   (Harley-Seal) tree adds 16 output rows at a time into ones, twos, fours and eights, its sixteens
   go into a ripple counter; the rows left over (< 16) and the tree's four planes are added into a
   5-plane counter; the bit planes are then summed per sample. */
static void lgn_group_sum(const lgn_block *last, size_t n, int32_t *counts) {{
  int32_t sums[64 * LGN_W] LGN_ALIGNED;
  for (int c = 0; c < LGN_CLASSES; ++c) {{
    lgn_block tree[4][LGN_LANES], low[5][LGN_LANES], high[LGN_PLANES][LGN_LANES];
    memset(tree, 0, sizeof tree);
    memset(low, 0, sizeof low);
    memset(high, 0, sizeof high);
    const lgn_block *base = last + (size_t)c * LGN_GROUP * LGN_LANES;
    int i = 0;
    for (; i + 16 <= LGN_GROUP; i += 16) {{
      const lgn_block *x = base + (size_t)i * LGN_LANES;
      lgn_block sixteens[LGN_LANES];
      for (int w = 0; w < LGN_LANES; ++w) {{
#define X(k) x[(k) * LGN_LANES + w]
        lgn_block f0, f1, f2, f3, e0, e1;
        CSA4(f0, w, X(0), X(1), X(2), X(3));
        CSA4(f1, w, X(4), X(5), X(6), X(7));
        CSA4(f2, w, X(8), X(9), X(10), X(11));
        CSA4(f3, w, X(12), X(13), X(14), X(15));
#undef X
        CSA(e0, tree[2][w], tree[2][w], f0, f1);
        CSA(e1, tree[2][w], tree[2][w], f2, f3);
        CSA(sixteens[w], tree[3][w], tree[3][w], e0, e1);
      }}
      lgn_ripple(high, LGN_PLANES, sixteens);
    }}
    for (; i < LGN_GROUP; ++i) lgn_ripple(low, 4, base + (size_t)i * LGN_LANES);
    for (int p = 0; p < 4; ++p) lgn_ripple(low + p, 5 - p, tree[p]);
    memset(sums, 0, sizeof sums);
    for (int p = 0; p < 5; ++p) lgn_add_plane(sums, low[p], p);
    for (int p = 0; p < LGN_PLANES; ++p) lgn_add_plane(sums, high[p], p + 4);
    for (size_t s = 0; s < n; ++s) counts[s * LGN_CLASSES + c] = sums[s];
  }}
}}

int lgn_class_counts(const uint8_t *x, size_t n, int32_t *counts) {{
  static lgn_block buf_a[(size_t)LGN_MAX_WIDTH * LGN_LANES], buf_b[(size_t)LGN_MAX_WIDTH * LGN_LANES];
  const size_t block = 64 * LGN_W;
  uint64_t seen = 0;
  for (size_t i = 0; i < n; i += block) {{
    const size_t m = n - i < block ? n - i : block;
    lgn_block *in = buf_a, *out = buf_b;
    seen |= lgn_pack(x + i * LGN_INPUTS, m, i + m == n, (uint64_t *)in);
    for (int l = 0; l < LGN_LAYERS; ++l) {{
      lgn_layer(in, out, l);
      lgn_block *t = in; in = out; out = t;
    }}
    lgn_group_sum(in, m, counts + i * LGN_CLASSES);
  }}
  return (seen & ~0x0101010101010101ULL) != 0;
}}
"""


def find_compiler() -> str | None:
    """The system C compiler (``$CC``, cc, gcc or clang), or ``None``."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("QUINTET_CACHE", Path.home() / ".cache" / "quintet")) / "logic"


def build_library(source: str, compiler: str, flags: tuple[str, ...] = CFLAGS,
                  use_cache: bool = True) -> tuple[Path, float]:
    """Compile ``source`` into a cached shared library; returns (path, seconds spent compiling, 0 on a
    cache hit). ``use_cache=False`` always compiles (into a fresh folder)."""
    # the host is part of the key: -march=native code may not run on another machine sharing the cache
    key = hashlib.sha256((source + compiler + " ".join(flags) + platform.node()).encode()).hexdigest()[:32]
    target = (cache_dir() if use_cache else Path(tempfile.mkdtemp(prefix="quintet-logic-"))) / f"{key}.so"
    if target.is_file():
        return target, 0.0
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        c_file, so_file = Path(tmp) / "net.c", Path(tmp) / "net.so"
        c_file.write_text(source)
        start = time.perf_counter()
        proc = subprocess.run([compiler, *flags, "-o", str(so_file), str(c_file)], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise QuintetError(f"{compiler} failed to compile the network: {proc.stderr.strip()[:500]}")
        os.replace(so_file, target)  # atomic: a half-written library is never cached
    return target, seconds


class CompiledLogicNet:
    """A discretised logic gate network evaluated bit-parallel, 64 samples per machine word.

    >>> net = CompiledLogicNet.from_model(model)          # model: Sequential of LogicLayers + GroupSum
    >>> net.predict(x_bool)                               # (N,) int64, equal to model.eval()'s argmax

    ``backend="c"`` compiles generated C (cached by the netlist's hash), ``"numpy"`` needs no
    compiler, ``"auto"`` takes C when a compiler is found.
    """

    def __init__(self, net: GateNetwork, backend: str = "auto", use_cache: bool = True):
        if backend not in ("auto", "c", "numpy"):
            raise QuintetError(f"unknown backend {backend!r}; expected one of: auto, c, numpy")
        self.net = net
        self.compile_seconds = 0.0
        self._fn = None
        compiler = find_compiler() if backend != "numpy" else None
        if backend == "c" and compiler is None:
            raise QuintetError("backend 'c' needs a C compiler (cc, gcc or clang on PATH, or $CC)")
        self.backend = "c" if compiler else "numpy"
        if compiler:
            source = c_source(net)
            try:
                path, self.compile_seconds = build_library(source, compiler, CFLAGS, use_cache)
            except QuintetError:
                path, self.compile_seconds = build_library(source, compiler, PORTABLE_CFLAGS, use_cache)
            fn = ctypes.CDLL(str(path)).lgn_class_counts
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
            self._fn = fn

    @classmethod
    def from_model(cls, model: nn.Module, backend: str = "auto", use_cache: bool = True) -> "CompiledLogicNet":
        """Discretise ``model`` and compile it (see the class docstring)."""
        return cls(GateNetwork.from_model(model), backend, use_cache)

    def class_counts(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(N, classes)`` int32 GroupSum counts; ``x``: ``(N, in_dim)`` of 0/1 (or bool)."""
        if self._fn is None:
            return class_counts_numpy(self.net, x)
        data = check_binary_input(x, self.net.in_dim, scan_bytes=False)  # the C code checks bytes as it reads
        counts = np.empty((data.shape[0], self.net.classes), dtype=np.int32)
        with _C_CALL:
            status = self._fn(data.ctypes.data, data.shape[0], counts.ctypes.data) if data.shape[0] else 0
        if status:
            check_binary_input(data, self.net.in_dim)  # raises, naming the value
        return counts

    def __call__(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(N, classes)`` float: the same values as the PyTorch model in eval mode (counts / tau)."""
        return torch.from_numpy(self.class_counts(x)).float() / self.net.tau

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(N,)`` int64: the first argmax of the class counts."""
        return self.class_counts(x).argmax(1).astype(np.int64)


def export_c(model_or_net: nn.Module | GateNetwork, path: str | os.PathLike) -> Path:
    """Write the standalone C source of a discretised network (atomically)."""
    net = model_or_net if isinstance(model_or_net, GateNetwork) else GateNetwork.from_model(model_or_net)
    return atomic_write_text(path, c_source(net))
