"""Benchmark of Vitruvion's samplers: sketches/second with and without the KV cache (batch 64),
and constraint inference time per sketch.

The models are the trained quick checkpoints of ``quintet reproduce sketch --quick``
(``runs/sketch-models-reproduce/<key>/checkpoints``) when they exist, or those of ``--models``;
random weights only when neither is there (the result records which). Sequence lengths, hence the
work, depend on the weights, so only trained models give representative timings.

Before timing, the cached and uncached samplers must give identical greedy completions of eight
different primers (first halves of procedural sketches), so the check compares sequences of real
length (the cache is an optimisation, not an approximation); constraint inference is checked the
same way. Sampling is then timed with nucleus sampling (p = 0.9) at the model's own ``max_len``.
No peer package implements Vitruvion, so the reference is our own full-recompute path.

    .venv/bin/python benchmarks/sketch_models.py [--batch 64] [--repeats 3] [--models DIR]

Writes benchmarks/results/sketch_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from quintet.core.io import atomic_write_json
from quintet.core.runs import environment
from quintet.sketch.models import (
    ConstraintModel,
    ConstraintModelConfig,
    PrimitiveModel,
    PrimitiveModelConfig,
    load_model,
)
from quintet.sketch.models.sample import infer_constraints, sample_primitives


def default_models() -> Path | None:
    """The quick reproduce run's checkpoint folder (seed 0), if it was trained."""
    from quintet.sketch.models.cli import REPRODUCE_MODELS
    from quintet.sketch.models.experiment import ModelsExperimentConfig

    folder = REPRODUCE_MODELS / ModelsExperimentConfig.for_scale(True, 0).key() / "checkpoints"
    return folder if (folder / "primitive").is_dir() and (folder / "constraint").is_dir() else None


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(median seconds over ``repeats`` calls, the last call's result)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def primers(n: int, seed: int = 12345) -> list[list[int]]:
    """First halves (by primitive) of ``n`` procedural sketches, as primer token sequences."""
    from quintet.sketch.models import PrimitiveGrammar
    from quintet.sketch.models.experiment import procedural_sketches, tokenize_all

    g = PrimitiveGrammar()
    prims = [g.decode(p) for p in tokenize_all(procedural_sketches(n, seed))[0]]
    return [g.encode(p[: max(1, len(p) // 2)])[:-1] for p in prims]


def check_cache_equality(prim, cons, n: int = 8) -> dict:
    """Greedy completions of ``n`` primers and their inferred constraints, with and without the KV
    cache; raises unless the tokens are equal and the completions are not trivial."""
    ps = primers(n)
    a = sample_primitives(prim, n, primers=ps, top_p=None, use_cache=True)
    b = sample_primitives(prim, n, primers=ps, top_p=None, use_cache=False)
    assert a == b, "cached and uncached greedy samples differ"
    generated = [len(s) - len(p) for s, p in zip(a, ps)]
    assert sum(g > 1 for g in generated) >= n // 2, f"greedy completions too short to check the cache: {generated}"
    c1 = infer_constraints(cons, a, use_cache=True)
    c2 = infer_constraints(cons, a, use_cache=False)
    assert c1 == c2, "cached and uncached constraint inference differ"
    return {"greedy_lengths_checked": [len(s) for s in a], "greedy_primer_lengths": [len(p) for p in ps],
            "constraints_checked": [len(c) for c in c1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=None, help="Sampling budget in tokens (default: the model's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", type=Path, default=None,
                    help="Folder with primitive/ and constraint/ checkpoints (default: the quick reproduce run's, "
                         "random weights when it does not exist)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sketch_models.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = args.models or default_models()
    if models is not None:
        prim = load_model(models / "primitive", "primitive")
        cons = load_model(models / "constraint", "constraint")
    else:
        prim = PrimitiveModel(PrimitiveModelConfig()).eval()
        cons = ConstraintModel(ConstraintModelConfig()).eval()
    max_len = args.max_len or prim.config.max_len
    load_before = os.getloadavg()[0]  # the timings depend on what else shares the CPU
    checked = check_cache_equality(prim, cons)

    def run(cache: bool):
        return sample_primitives(prim, args.batch, top_p=0.9, use_cache=cache, max_len=max_len,
                                 generator=torch.Generator().manual_seed(1))

    t_cache, samples = _time(lambda: run(True), args.repeats)
    t_full, samples_full = _time(lambda: run(False), args.repeats)
    t_cons, inferred = _time(lambda: infer_constraints(cons, samples), args.repeats)
    t_cons_full, _ = _time(lambda: infer_constraints(cons, samples, use_cache=False), args.repeats)
    result = {
        "batch": args.batch,
        "models": str(models) if models is not None else "random weights",
        "max_len": max_len,
        "max_constraint_len": cons.config.max_constraint_len,
        "threads": args.threads,
        **checked,
        "mean_tokens_per_sample": sum(len(s) for s in samples) / len(samples),
        "nucleus_samples_identical_with_and_without_cache": sum(x == y for x, y in zip(samples, samples_full)) / len(samples),
        "sketches_per_second_kv_cache": args.batch / t_cache,
        "sketches_per_second_full_recompute": args.batch / t_full,
        "kv_cache_speedup": t_full / t_cache,
        # a batch decodes as many steps as its longest constraint sequence (Start … Stop)
        "longest_constraint_sequence_tokens": max(2 + sum(1 + len(refs) for _, refs in c) for c in inferred),
        "constraint_inference_seconds_per_sketch": t_cons / len(samples),
        "constraint_inference_seconds_per_sketch_no_cache": t_cons_full / len(samples),
        "constraint_kv_cache_speedup": t_cons_full / t_cons,
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
        "environment": environment(),
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
