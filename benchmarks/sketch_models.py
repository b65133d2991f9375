"""Benchmark of Vitruvion's samplers: sketches/second with and without the KV cache (batch 64),
and constraint inference time per sketch.

The cached and uncached samplers are first checked to give identical greedy samples (the cache is
an optimisation, not an approximation), then timed with nucleus sampling (p = 0.9). No peer
package implements Vitruvion, so the reference is our own full-recompute path. Models have the
default sizes (d=128, 4 layers), random weights unless ``--models`` names trained checkpoints
(sequence lengths, hence the work, depend on the weights).

    .venv/bin/python benchmarks/sketch_models.py [--batch 64] [--max-len 130] [--repeats 3]

Writes benchmarks/results/sketch_models.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from quintet.core.io import atomic_write_json
from quintet.core.runs import environment
from quintet.sketch.models import (
    ConstraintModel,
    ConstraintModelConfig,
    PrimitiveModel,
    PrimitiveModelConfig,
)
from quintet.sketch.sample import infer_constraints, sample_primitives


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=130)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", type=Path, default=None,
                    help="Folder with primitive/ and constraint/ checkpoints (e.g. runs/sketch-models-reproduce/"
                         "quick-seed0/checkpoints); default: random weights")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sketch_models.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.models is not None:
        from quintet.sketch.models import load_model

        prim = load_model(args.models / "primitive", "primitive")
        cons = load_model(args.models / "constraint", "constraint")
    else:
        prim = PrimitiveModel(PrimitiveModelConfig()).eval()
        cons = ConstraintModel(ConstraintModelConfig()).eval()
    # random weights rarely stop early: the samples run to max_len, a fixed amount of work
    # 1. equality of the two paths (greedy)
    a = sample_primitives(prim, 8, top_p=None, use_cache=True, max_len=args.max_len)
    b = sample_primitives(prim, 8, top_p=None, use_cache=False, max_len=args.max_len)
    assert a == b, "cached and uncached greedy samples differ"
    lengths = [len(s) for s in a]

    def run(cache: bool):
        return sample_primitives(prim, args.batch, top_p=0.9, use_cache=cache, max_len=args.max_len,
                                 generator=torch.Generator().manual_seed(1))

    t_cache = _time(lambda: run(True), args.repeats)
    t_full = _time(lambda: run(False), args.repeats)
    samples = run(True)
    n_tokens = sum(len(s) for s in samples)
    c1 = infer_constraints(cons, samples[:8], use_cache=True, max_len=64)
    c2 = infer_constraints(cons, samples[:8], use_cache=False, max_len=64)
    assert c1 == c2, "cached and uncached constraint inference differ"
    t_cons = _time(lambda: infer_constraints(cons, samples, max_len=64), args.repeats)
    t_cons_full = _time(lambda: infer_constraints(cons, samples, use_cache=False, max_len=64), args.repeats)
    result = {
        "batch": args.batch,
        "models": str(args.models) if args.models else "random weights",
        "max_len": args.max_len,
        "threads": args.threads,
        "mean_tokens_per_sample": n_tokens / len(samples),
        "greedy_lengths_checked": lengths,
        "sketches_per_second_kv_cache": args.batch / t_cache,
        "sketches_per_second_full_recompute": args.batch / t_full,
        "kv_cache_speedup": t_full / t_cache,
        "constraint_inference_seconds_per_sketch": t_cons / len(samples),
        "constraint_inference_seconds_per_sketch_no_cache": t_cons_full / len(samples),
        "constraint_kv_cache_speedup": t_cons_full / t_cons,
        "environment": environment(),
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
