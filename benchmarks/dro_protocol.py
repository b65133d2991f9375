"""Cost of the authors' protocol pieces: the training recipe, the model size, the non-parametric
adversaries.

1. Time per ratio-DRO training step under our recipe (Adam, mean loss) and the authors' (AdamW,
   two gradient-norm clips, summed loss), for the small BiLSTM (64/64) and the authors' size
   (300-d embeddings, 300 units per direction, learned initial states), batch 64 of 20 tokens.
2. The KL and chi-square best responses against a reference written the way the authors'
   ``non_param_dro.py`` solves them (NumPy + ``scipy.optimize.bisect``): outputs compared before
   timing (KL: equal; chi-square: the authors' bracket ends where the divergence is 0 again, so the
   reference is given the bracket ending just below the largest loss, as ours).

    .venv/bin/python benchmarks/dro_protocol.py [--steps 20] [--threads 1]

Writes benchmarks/results/dro_protocol.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from quintet.dro import Adversary, ModelSpec, build_model, ratio_dro_objectives
from quintet.dro.nonparametric import chi2_best_response, kl_best_response

SIZES = {"small (64/64)": dict(embed_dim=64, hidden=64), "authors (300/300)": dict(embed_dim=300, hidden=300, learned_init=True)}


def step_time(spec: ModelSpec, recipe: str, steps: int) -> float:
    torch.manual_seed(0)
    model, adversary = build_model(spec), Adversary(build_model(spec))
    params = [{"params": model.parameters()}, {"params": adversary.parameters()}]
    opt = torch.optim.AdamW(params, lr=1e-3) if recipe == "authors" else torch.optim.Adam(params, lr=1e-3)
    x, y = torch.randint(1, spec.vocab_size, (64, 20)), torch.randint(0, 2, (64,))
    times = []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        losses = F.cross_entropy(model(x), y, reduction="none")
        m, a = ratio_dro_objectives(losses, adversary(x, y), 0.01, "sum" if recipe == "authors" else "mean")
        opt.zero_grad()
        (m + a).backward()
        if recipe == "authors":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            torch.nn.utils.clip_grad_norm_(adversary.parameters(), 10.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def reference_kl(losses: np.ndarray, kappa: float) -> np.ndarray:
    def gap(log_tau):
        z = losses / 10**log_tau
        z = z - z.max()
        log_q = z - np.log(np.mean(np.exp(z)))
        return (np.exp(log_q) * log_q).mean() - kappa

    log_tau = scipy.optimize.bisect(gap, -10, 10, xtol=1e-5, maxiter=100)
    z = losses / 10**log_tau
    q = np.exp(z - z.max())
    return q / q.sum()


def reference_chi2(losses: np.ndarray, rho: float) -> np.ndarray:
    def gap(eta):
        q = np.maximum(1e-12, losses - eta)
        q = q / q.sum()
        return 0.5 * ((len(losses) * q - 1) ** 2).mean() - rho

    top, spread = losses.max(), losses.max() - losses.min()
    eta = scipy.optimize.bisect(gap, -top / (np.sqrt(2 * rho + 1) - 1), top - 1e-6 * spread, xtol=1e-9 * spread, maxiter=100)
    q = np.maximum(losses - eta, 0)
    return q / q.sum()


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, size in SIZES.items():
        spec = ModelSpec("bilstm", 2, vocab_size=15000, **size)
        ours, authors = step_time(spec, "ours", args.steps), step_time(spec, "authors", args.steps)
        rows.append({"model": name, "parameters": sum(p.numel() for p in build_model(spec).parameters()),
                     "ours_ms": round(1e3 * ours, 2), "authors_ms": round(1e3 * authors, 2),
                     "authors_over_ours": round(authors / ours, 2),
                     "epoch_minutes_67k_authors_recipe": round(authors * 1053 / 60, 1)})
        print(rows[-1])
    losses = np.random.RandomState(0).gamma(2.0, 0.5, size=64)
    t = torch.tensor(losses)
    responses = []
    for name, ours_fn, ref_fn, size in (("kl", kl_best_response, reference_kl, 1.0),
                                        ("chi2", chi2_best_response, reference_chi2, 1.0)):
        ours_q, ref_q = ours_fn(t, size).numpy(), ref_fn(losses, size)
        diff = float(np.abs(ours_q - ref_q).max())
        assert diff < 1e-4, (name, diff)
        ours_s = timed(lambda f=ours_fn, s=size: f(t, s), 50)
        ref_s = timed(lambda f=ref_fn, s=size: f(losses, s), 50)
        responses.append({"adversary": name, "batch": 64, "max_abs_diff": diff, "ours_ms": round(1e3 * ours_s, 3),
                          "reference_ms": round(1e3 * ref_s, 3), "ours_over_reference": round(ours_s / ref_s, 2)})
        print(responses[-1])
    out = Path(__file__).parent / "results" / "dro_protocol.json"
    from quintet.core.io import atomic_write_json

    atomic_write_json(out, {"threads": args.threads, "torch": torch.__version__, "ratio_step": rows,
                            "best_response": responses})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
