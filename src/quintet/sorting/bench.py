"""Side-by-side forward + backward timing and peak memory: quintet vs diffsort 0.2.0 (and
torchsort's values-only ``soft_sort`` where it is installed).  Outputs are checked equal first."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from quintet.core.errors import QuintetError
from quintet.sorting.networks import resolve_network

__all__ = ["run_benchmark", "batch_for", "check_settings"]


# outputs must agree this closely before anything is timed: the float32 bound, which the
# oracle test holds strictly (measured worst case over the benchmark sizes: 2.5e-6 at n = 1024)
EQUAL_ATOL = 1e-5


def check_settings(sizes, network: str, repeats: int) -> str:
    """Validate the benchmark settings before any implementation runs; return the canonical network."""
    name = resolve_network(network)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise QuintetError(f"repeats must be an integer >= 1 (the median needs a run), got {repeats!r}")
    if not sizes:
        raise QuintetError("sizes must list at least one n >= 2")
    bad = [n for n in sizes if isinstance(n, bool) or not isinstance(n, int) or n < 2]
    if bad:
        raise QuintetError(f"every size must be an integer n >= 2, got {bad}")
    return name


def batch_for(n: int) -> int:
    return 16 if n >= 1024 else 64


def _inputs(n: int, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, generator=gen)
    w = torch.randn(batch, n, n, generator=gen) / n
    return x, w


def _step_fn(impl: str, n: int, network: str, steepness: float) -> Callable:
    if impl == "quintet":
        from quintet.sorting import diffsort

        return lambda v: diffsort(v, network=network, steepness=steepness, padding="reference")
    if impl == "diffsort":
        import diffsort as reference

        # quintet's canonical names are the spellings diffsort 0.2.0 accepts
        net = reference.DiffSortNet(resolve_network(network), n, steepness=steepness)
        return net
    if impl == "torchsort":
        import torchsort

        return lambda v: (torchsort.soft_sort(v, regularization_strength=1.0 / steepness), None)
    raise ValueError(impl)


def _run_once(fn, x, w) -> float:
    v = x.clone().requires_grad_(True)
    start = time.perf_counter()
    s, p = fn(v)
    loss = s.sum() if p is None else s.sum() + (p * w).sum()
    loss.backward()
    return time.perf_counter() - start


_MEMORY_SNIPPET = r"""
import json, sys, torch
torch.set_num_threads({threads})
from quintet.sorting.bench import _inputs, _step_fn, _run_once

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

x, w = _inputs({n}, {batch})
fn = _step_fn({impl!r}, {n}, {network!r}, {steepness})
_run_once(fn, _inputs({n}, 2)[0], _inputs({n}, 2)[1])  # load lazy code paths on a tiny batch
with open("/proc/self/clear_refs", "w") as handle:  # reset the peak-RSS mark (Linux)
    handle.write("5")
before = status("VmRSS:")
_run_once(fn, x, w)
print(json.dumps({{"peak_mib": (status("VmHWM:") - before) / 1024}}))
"""


def _peak_memory(impl, n, batch, network, steepness, threads) -> float | None:
    code = _MEMORY_SNIPPET.format(impl=impl, n=n, batch=batch, network=network, steepness=steepness,
                                  threads=threads)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return round(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"], 1)


def _available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return False


def run_benchmark(sizes, network: str = "bitonic", repeats: int = 5, memory: bool = True, threads: int = 2,
                  steepness: float = 10.0, log: Callable[[str], None] = print) -> dict:
    """Median forward+backward seconds per implementation and size; ratios vs diffsort."""
    network = check_settings(sizes, network, repeats)
    impls = ["quintet"] + [m for m in ("diffsort", "torchsort") if _available(m)]
    rows = []
    for n in sizes:
        batch = batch_for(n)
        x, w = _inputs(n, batch)
        fns = {impl: _step_fn(impl, n, network, steepness) for impl in impls}
        row: dict = {"n": n, "batch": batch, "network": network}
        # equal outputs first
        ours_s, ours_p = fns["quintet"](x)
        if "diffsort" in fns:
            ref_s, ref_p = fns["diffsort"](x)
            row["max_abs_diff_sorted"] = float((ours_s - ref_s).abs().max())
            row["max_abs_diff_P"] = float((ours_p - ref_p).abs().max())
            if max(row["max_abs_diff_sorted"], row["max_abs_diff_P"]) > EQUAL_ATOL:
                raise RuntimeError(f"outputs differ by more than {EQUAL_ATOL:g} at n={n}: {row}")
        if "torchsort" in fns:
            row["torchsort_note"] = "values only (no permutation matrix); regularization_strength = 1/steepness"
        for impl, fn in fns.items():
            if impl == "torchsort":  # the others were warmed up by the equality check
                _run_once(fn, x, w)
            times = [_run_once(fn, x, w) for _ in range(repeats)]
            row[f"{impl}_s"] = statistics.median(times)
            log(f"n={n} {impl}: median {row[f'{impl}_s']:.4f} s over {repeats}")
            if memory and impl != "torchsort":
                row[f"{impl}_peak_mib"] = _peak_memory(impl, n, batch, network, steepness, threads)
        if "diffsort_s" in row:
            row["speedup_vs_diffsort"] = row["diffsort_s"] / row["quintet_s"]
            if row.get("quintet_peak_mib") and row.get("diffsort_peak_mib"):
                row["memory_ratio_vs_diffsort"] = row["quintet_peak_mib"] / row["diffsort_peak_mib"]
        rows.append(row)
    return {
        "what": "forward + backward of (sorted.sum() + (P * W).sum()), float32, CPU; peak = rise of the "
                "process's peak RSS during one forward + backward (fresh subprocess per case)",
        "threads": threads,
        "repeats": repeats,
        "equal_atol": EQUAL_ATOL,
        "torch": torch.__version__,
        "implementations": impls,
        "rows": rows,
    }
