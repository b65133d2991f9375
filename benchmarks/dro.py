"""Time per training step: ratio DRO vs ERM on the same model (BiLSTM, small CNN, MLP).

Ratio DRO adds a second network (the adversary, same architecture) that is run forward and
backward on every batch, so a step should cost about 2x an ERM step. Before timing, the script
checks that a ratio step with a fresh (zero-output) adversary updates the model exactly like an
ERM step, since uniform weights w = 1 reduce the objective to ERM.

    .venv/bin/python benchmarks/dro.py [--steps 60] [--threads 1]

Writes benchmarks/results/dro.json.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from quintet.dro import Adversary, ModelSpec, build_model, ratio_dro_objectives

SETUPS = {
    # name: (spec, input maker, batch)
    "bilstm (BiasedSST)": (ModelSpec("bilstm", 2, vocab_size=15000), lambda b: torch.randint(1, 15000, (b, 20)), 64),
    "boe (BiasedSST)": (ModelSpec("boe", 2, vocab_size=15000), lambda b: torch.randint(1, 15000, (b, 20)), 64),
    "cnn (Colored MNIST)": (ModelSpec("cnn", 2, in_channels=2, hidden=32), lambda b: torch.rand(b, 2, 14, 14), 64),
    "mlp (Adult)": (ModelSpec("mlp", 2, in_features=108), lambda b: torch.randn(b, 108), 64),
}


def make_step(spec: ModelSpec, ratio: bool, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(spec)
    adversary = Adversary(build_model(spec)) if ratio else None
    params = [{"params": model.parameters()}]
    if adversary is not None:
        params.append({"params": adversary.parameters(), "lr": 1e-4})
    opt = torch.optim.Adam(params, lr=1e-3)

    def step(x, y):
        losses = F.cross_entropy(model(x), y, reduction="none")
        if adversary is None:
            loss = losses.mean()
        else:
            m, a = ratio_dro_objectives(losses, adversary(x, y), tau=0.01)
            loss = m + a
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step


def check_equal(spec: ModelSpec, make_x, batch: int) -> float:
    """Max |difference| of model parameters after one ERM step and one ratio step (fresh adversary)."""
    x, y = make_x(batch), torch.randint(0, 2, (batch,))
    erm_model, erm_step = make_step(spec, ratio=False)
    ratio_model, ratio_step = make_step(spec, ratio=True)
    ratio_model.load_state_dict(copy.deepcopy(erm_model.state_dict()))
    erm_step(x, y)
    ratio_step(x, y)
    return max(float((a - b).detach().abs().max()) for a, b in zip(erm_model.parameters(), ratio_model.parameters()))


def time_steps(spec: ModelSpec, make_x, batch: int, ratio: bool, steps: int) -> float:
    _, step = make_step(spec, ratio)
    data = [(make_x(batch), torch.randint(0, 2, (batch,))) for _ in range(steps + 5)]
    times = []
    for i, (x, y) in enumerate(data):
        t0 = time.perf_counter()
        step(x, y)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dro.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (spec, make_x, batch) in SETUPS.items():
        diff = check_equal(spec, make_x, batch)
        if diff > 1e-6:
            raise SystemExit(f"{name}: a ratio step with a fresh adversary differs from ERM by {diff:g}")
        erm = time_steps(spec, make_x, batch, False, args.steps)
        ratio = time_steps(spec, make_x, batch, True, args.steps)
        rows.append({"model": name, "batch": batch, "erm_ms": round(1e3 * erm, 3), "ratio_ms": round(1e3 * ratio, 3),
                     "ratio_over_erm": round(ratio / erm, 2), "max_param_diff_first_step": diff})
        print(f"{name:22s} ERM {1e3 * erm:7.2f} ms  ratio DRO {1e3 * ratio:7.2f} ms  x{ratio / erm:.2f}")
    from quintet.core.io import atomic_write_json
    from quintet.core.runs import environment

    atomic_write_json(args.out, {"steps": args.steps, "threads": args.threads, "rows": rows, "environment": environment()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
