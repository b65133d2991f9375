"""Seconds per prompt of integrated-gradients attribution on SmolLM2-135M (30 gated layers):
quintet's staircase with the prompt's earlier tokens in a key/value cache (the default for causal
LMs) vs the same staircase over the whole prompt in every row (the path masked LMs take).

The two are checked to give the same scores (max |Δ| / max |score|) before timing; then each
prompt is timed interleaved, both paths in turn, ``--repeats`` times, and the median process CPU
time (``time.process_time``, one thread: compute without the time spent waiting for a core on a
shared machine) is reported per path and rule (Gauss–Legendre m = 5, the right sum m = 20).

    .venv/bin/python benchmarks/knowledge_causal.py [--repeats 2]

Writes benchmarks/results/knowledge_causal.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [("The capital of France is", "Paris"), ("Minsk is the capital city of", "Belarus"),
           ("The official language of the country where the Eiffel Tower stands is", "French")]


def _cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/knowledge_causal.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import quintet.knowledge.attribution as attribution
    from quintet.core.io import atomic_write_json
    from quintet.knowledge import integrated_gradients
    from quintet.knowledge.pretrained import load_pretrained

    model, tok = load_pretrained("smollm2")
    cached_path = attribution._prefix_cache

    def run(prompt, answer, steps, rule, cached):
        attribution._prefix_cache = cached_path if cached else (lambda *a, **k: None)
        try:
            return integrated_gradients(model, tok, prompt, answer, steps=steps, rule=rule)
        finally:
            attribution._prefix_cache = cached_path

    rows = []
    for steps, rule in ((5, "gauss"), (20, "right")):
        for prompt, answer in PROMPTS:
            fast, full = run(prompt, answer, steps, rule, True), run(prompt, answer, steps, rule, False)
            diff = float((fast.scores - full.scores).abs().max() / full.scores.abs().max())
            if diff > 1e-4:
                print(f"scores differ by {diff:.2e} on {prompt!r}", file=sys.stderr)
                return 1
            times = {True: [], False: []}
            for _ in range(args.repeats):
                for cached in (True, False):
                    args_ = (prompt, answer, steps, rule, cached)
                    times[cached].append(_cpu_seconds(lambda a=args_: run(*a)))
            row = {"rule": rule, "steps": steps, "prompt": prompt, "tokens": len(tok(prompt)["input_ids"]),
                   "max_relative_score_difference": diff,
                   "cached_s": statistics.median(times[True]), "full_prompt_s": statistics.median(times[False])}
            row["speedup"] = row["full_prompt_s"] / row["cached_s"]
            rows.append(row)
            print(row, flush=True)
    atomic_write_json(args.out, {"benchmark": "knowledge attribution on SmolLM2-135M, seconds per prompt",
                                 "clock": "process CPU time (time.process_time), median over repeats",
                                 "threads": 1, "repeats": args.repeats, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
