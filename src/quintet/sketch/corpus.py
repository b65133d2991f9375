"""The procedural corpus on disk, and statistics of token corpora.

Format (``DIR/corpus.npz``, a plain NumPy archive, no pickle)::

    prim_val   uint8  (sum of primitive sequence lengths,)   value tokens, sketches concatenated
    prim_off   int64  (N + 1,)                                sketch i = prim_val[off[i]:off[i+1]]
    cons_val   uint16 (sum of constraint sequence lengths,)
    cons_off   int64  (N + 1,)
    family     uint8  (N,)                                    index into ``families``
    families   str    (F,)
    bits       int64  ()                                      quantisation bits

The ``coord`` and ``pos`` streams are recomputed from ``val`` (:mod:`quintet.sketch.models.grammar`
or :func:`quintet.sketch.tokens.decode_sketch`). ``DIR/meta.json`` records the seed and counts.
"""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import GEOMETRIC_TYPES
from quintet.sketch.primitives import PRIMITIVE_TYPES
from quintet.sketch.tokens import (
    CONSTRAINT_TYPE_OFFSET,
    DEFAULT_BITS,
    N_CONSTRAINT_SPECIAL,
    TYPE_OFFSET,
    decode_sketch,
    encode_sketch,
)

__all__ = ["TokenCorpus", "build_corpus_chunk", "write_corpus", "load_corpus", "token_stats", "corpus_stats", "sketchgraphs_stats"]


@dataclass
class TokenCorpus:
    prim_val: np.ndarray
    prim_off: np.ndarray
    cons_val: np.ndarray
    cons_off: np.ndarray
    family: np.ndarray
    families: tuple[str, ...]
    bits: int = DEFAULT_BITS

    def __len__(self) -> int:
        return len(self.prim_off) - 1

    def tokens(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(primitive val, constraint val)`` of sketch ``i`` as int64 arrays."""
        if not -len(self) <= i < len(self):
            raise QuintetError(f"sketch index {i} out of range for a corpus of {len(self)}")
        i %= len(self)
        p = self.prim_val[self.prim_off[i] : self.prim_off[i + 1]].astype(np.int64)
        c = self.cons_val[self.cons_off[i] : self.cons_off[i + 1]].astype(np.int64)
        return p, c

    def sketch(self, i: int):
        """The ``i``-th sketch, decoded from its quantised tokens (no dimensions, §3.1–3.2)."""
        return decode_sketch(self.tokens(i), self.bits, name=f"{self.families[self.family[i]]}#{i}")


def build_corpus_chunk(n: int, seed: int, bits: int = DEFAULT_BITS) -> dict:
    """Generate and tokenise ``n`` sketches; returns arrays for one chunk."""
    from quintet.sketch.synth import FAMILIES, generate_sketch

    rng = np.random.default_rng(seed)
    pv, cv, pl, cl, fam = [], [], [], [], []
    for _ in range(n):
        s = generate_sketch(rng)
        t = encode_sketch(s, bits)
        pv.append(t.primitives.val)
        cv.append(t.constraints.val)
        pl.append(len(t.primitives.val))
        cl.append(len(t.constraints.val))
        fam.append(FAMILIES.index(s.name))
    return {
        "prim_val": np.concatenate(pv).astype(np.uint8),
        "cons_val": np.concatenate(cv).astype(np.uint16),
        "prim_len": np.array(pl, np.int64),
        "cons_len": np.array(cl, np.int64),
        "family": np.array(fam, np.uint8),
    }


def _chunk_job(args):
    return build_corpus_chunk(*args)


def write_corpus(out: str | os.PathLike, n: int, seed: int = 0, workers: int = 2, chunk: int = 2000, progress: bool = True) -> dict:
    """Generate ``n`` sketches with ``workers`` processes and write ``out/corpus.npz``.

    Returns metadata (count, seconds, sketches per second)."""
    import multiprocessing as mp

    from quintet.core.io import atomic_write, atomic_write_json
    from quintet.sketch.synth import FAMILIES

    if n <= 0:
        raise QuintetError(f"--n must be positive, got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [min(chunk, n - k) for k in range(0, n, chunk)]
    jobs = [(s, seed * 1_000_003 + j) for j, s in enumerate(sizes)]
    start = time.perf_counter()
    parts = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="sketch", desc="corpus")
    if workers > 1 and len(jobs) > 1:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            for part in pool.imap(_chunk_job, jobs):
                parts.append(part)
                if bar:
                    bar.update(len(part["family"]))
    else:
        for job in jobs:
            parts.append(_chunk_job(job))
            if bar:
                bar.update(job[0])
    if bar:
        bar.close()
    pl = np.concatenate([p["prim_len"] for p in parts])
    cl = np.concatenate([p["cons_len"] for p in parts])
    arrays = {
        "prim_val": np.concatenate([p["prim_val"] for p in parts]),
        "prim_off": np.concatenate([[0], np.cumsum(pl)]).astype(np.int64),
        "cons_val": np.concatenate([p["cons_val"] for p in parts]),
        "cons_off": np.concatenate([[0], np.cumsum(cl)]).astype(np.int64),
        "family": np.concatenate([p["family"] for p in parts]),
        "families": np.array(FAMILIES),
        "bits": np.array(DEFAULT_BITS),
    }
    with atomic_write(out / "corpus.npz", "wb") as fh:
        np.savez_compressed(fh, **arrays)
    seconds = time.perf_counter() - start
    meta = {"format": "quintet-sketch-corpus/1", "n": n, "seed": seed, "workers": workers, "seconds": round(seconds, 3),
            "sketches_per_second": round(n / seconds, 1), "bytes": (out / "corpus.npz").stat().st_size}
    atomic_write_json(out / "meta.json", meta)
    return meta


def load_corpus(path: str | os.PathLike) -> TokenCorpus:
    """Load a corpus directory (or its ``corpus.npz``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.npz"
    if not path.is_file():
        raise QuintetError(f"no sketch corpus at {path} (write one with `quintet sketch corpus --out DIR`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return TokenCorpus(z["prim_val"], z["prim_off"], z["cons_val"], z["cons_off"], z["family"],
                               tuple(str(f) for f in z["families"]), int(z["bits"]))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise QuintetError(f"{path}: not a sketch corpus or a damaged one ({exc})") from None


def token_stats(seqs) -> dict:
    """Primitive / constraint type frequencies and sizes of ``[(prim val, cons val), ...]``."""
    prim_counts, cons_counts = Counter(), Counter()
    n_prims, n_cons = [], []
    for pv, cv in seqs:
        pv = np.asarray(pv)
        cv = np.asarray(cv)
        types = pv[(pv >= TYPE_OFFSET) & (pv < TYPE_OFFSET + len(PRIMITIVE_TYPES))] - TYPE_OFFSET
        for t, k in zip(*np.unique(types, return_counts=True)):
            prim_counts[PRIMITIVE_TYPES[int(t)]] += int(k)
        ctypes = cv[(cv >= CONSTRAINT_TYPE_OFFSET) & (cv < N_CONSTRAINT_SPECIAL)] - CONSTRAINT_TYPE_OFFSET
        for t, k in zip(*np.unique(ctypes, return_counts=True)):
            cons_counts[GEOMETRIC_TYPES[int(t)].value] += int(k)
        n_prims.append(len(types))
        n_cons.append(len(ctypes))
    tp, tc = max(sum(prim_counts.values()), 1), max(sum(cons_counts.values()), 1)
    return {
        "n_sketches": len(n_prims),
        "primitive_freq": {t: prim_counts[t] / tp for t in PRIMITIVE_TYPES},
        "constraint_freq": {t.value: cons_counts[t.value] / tc for t in GEOMETRIC_TYPES},
        "mean_primitives": float(np.mean(n_prims)) if n_prims else 0.0,
        "mean_constraints": float(np.mean(n_cons)) if n_cons else 0.0,
        "primitives_hist": {int(k): int(v) for k, v in zip(*np.unique(n_prims, return_counts=True))} if n_prims else {},
    }


def corpus_stats(corpus: TokenCorpus, limit: int | None = None) -> dict:
    """:func:`token_stats` of the first ``limit`` sketches of ``corpus`` (all by default)."""
    n = len(corpus) if limit is None else min(limit, len(corpus))
    return token_stats(corpus.tokens(i) for i in range(n))


def sketchgraphs_stats(data_dir=None, filtered: bool = True) -> dict:
    """The same statistics on the real SketchGraphs sample (filtered by Vitruvion's rule)."""
    from quintet.sketch.io.sketchgraphs import read_sketchgraphs, vitruvion_filter

    seqs = []
    for p in read_sketchgraphs(data_dir):
        if filtered and not vitruvion_filter(p).passed:
            continue
        if not p.sketch.primitives:
            continue
        t = encode_sketch(p.sketch)
        seqs.append((t.primitives.val, t.constraints.val))
    return token_stats(seqs)
