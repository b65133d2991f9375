"""Throughput of the procedural sketch corpus (generation + tokenisation + writing) and of
SolveSpace solving; writes benchmarks/results/sketch_corpus.json.

    .venv/bin/python benchmarks/sketch_corpus.py [--n 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from quintet.sketch.corpus import load_corpus, write_corpus
from quintet.sketch.solve import solve_many
from quintet.sketch.synth import generate_sketches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, args.workers}):
            meta = write_corpus(Path(tmp) / f"w{workers}", args.n, seed=0, workers=workers, progress=False)
            assert len(load_corpus(Path(tmp) / f"w{workers}")) == args.n
            out[f"corpus_workers_{workers}"] = meta
    sketches = generate_sketches(500, seed=1)
    t = time.perf_counter()
    results = solve_many(sketches, timeout=600)
    dt = time.perf_counter() - t
    out["solve"] = {"n": len(sketches), "seconds": round(dt, 3), "sketches_per_second": round(len(sketches) / dt, 1),
                    "ok": sum(r.ok for r in results), "fully_constrained": sum(r.ok and r.dof == 0 for r in results)}
    path = Path(__file__).parent / "results" / "sketch_corpus.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
