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

__all__ = ["run_benchmark", "batch_for", "check_settings", "feasible", "MEMORY_CAP"]


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


#: fast cases repeat (interleaved) until both implementations ran this long, at most MAX_ROUNDS times
MIN_SECONDS = 3.0
MAX_ROUNDS = 400

#: bytes the saved per-layer state of one forward + backward may take in the benchmark
MEMORY_CAP = 3 * 2**30


def batch_for(n: int, network: str = "bitonic") -> int:
    """Batch of the benchmark at ``n``: 64 (16 from n = 1024 on), lowered for odd-even, whose
    ``n`` layers both implementations keep for the backward (``~2 n^3`` floats per row)."""
    batch = 16 if n >= 1024 else 64
    if resolve_network(network) == "odd_even":
        while batch > 1 and batch * 2 * n**3 * 4 > MEMORY_CAP:
            batch //= 2
    return batch


def feasible(n: int, network: str) -> bool:
    """Whether one row of ``network`` at ``n`` fits :data:`MEMORY_CAP` at batch 1."""
    return resolve_network(network) != "odd_even" or 2 * n**3 * 4 <= MEMORY_CAP


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


def _run_once(fn, x, w) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one forward + backward (CPU time leaves out the time the process
    waited for a core, so it is the steadier measure on a shared machine; equal to the wall time
    of a single thread running alone)."""
    v = x.clone().requires_grad_(True)
    start, cpu = time.perf_counter(), time.process_time()
    s, p = fn(v)
    loss = s.sum() if p is None else s.sum() + (p * w).sum()
    loss.backward()
    return time.perf_counter() - start, time.process_time() - cpu


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
                  steepness: float = 10.0, log: Callable[[str], None] = print, reference_max_n: int = 1024,
                  time_cap: float = 60.0) -> dict:
    """Median forward+backward seconds per implementation and size; ratios vs diffsort.

    The implementations run interleaved (one run of each in turn), so that a change of load on
    the machine hits both alike; at least ``repeats`` rounds, more (up to ``MAX_ROUNDS``) while the
    rounds took less than ``MIN_SECONDS``.  An implementation stops repeating at a size once its runs there
    took ``time_cap`` seconds (the count is recorded).  diffsort is timed up to ``reference_max_n``;
    sizes whose saved per-layer state exceeds :data:`MEMORY_CAP` even at batch 1 are skipped."""
    network = check_settings(sizes, network, repeats)
    impls = ["quintet"] + [m for m in ("diffsort", "torchsort") if _available(m)]
    rows = []
    for n in sizes:
        batch = batch_for(n, network)
        row: dict = {"n": n, "batch": batch, "network": network}
        if not feasible(n, network):
            row["skipped"] = f"{network} keeps ~2 n^3 floats per row for the backward: over {MEMORY_CAP / 2**30:g} GiB"
            rows.append(row)
            log(f"n={n}: skipped ({row['skipped']})")
            continue
        x, w = _inputs(n, batch)
        here = [i for i in impls if i != "diffsort" or n <= reference_max_n]
        fns = {impl: _step_fn(impl, n, network, steepness) for impl in here}
        # equal outputs first (also the warm-up of quintet and diffsort)
        ours_s, ours_p = fns["quintet"](x)
        if "diffsort" in fns:
            ref_s, ref_p = fns["diffsort"](x)
            row["max_abs_diff_sorted"] = float((ours_s - ref_s).abs().max())
            row["max_abs_diff_P"] = float((ours_p - ref_p).abs().max())
            if max(row["max_abs_diff_sorted"], row["max_abs_diff_P"]) > EQUAL_ATOL:
                raise RuntimeError(f"outputs differ by more than {EQUAL_ATOL:g} at n={n}: {row}")
        if "torchsort" in fns:
            row["torchsort_note"] = "values only (no permutation matrix); regularization_strength = 1/steepness"
            _run_once(fns["torchsort"], x, w)
        times: dict[str, list[tuple[float, float]]] = {impl: [] for impl in fns}
        started = time.perf_counter()
        for rounds in range(MAX_ROUNDS):
            if rounds >= repeats and time.perf_counter() - started >= MIN_SECONDS:
                break
            for impl, fn in fns.items():
                if sum(t for t, _ in times[impl]) < time_cap:
                    times[impl].append(_run_once(fn, x, w))
        for impl in fns:
            row[f"{impl}_s"] = statistics.median(t for t, _ in times[impl])
            row[f"{impl}_cpu_s"] = statistics.median(c for _, c in times[impl])
            row[f"{impl}_runs"] = len(times[impl])
            log(f"{network} n={n} {impl}: median {row[f'{impl}_s']:.4f} s over {len(times[impl])}")
            if memory and impl != "torchsort":
                row[f"{impl}_peak_mib"] = _peak_memory(impl, n, batch, network, steepness, threads)
        if "diffsort_s" in row:
            row["speedup_vs_diffsort"] = row["diffsort_s"] / row["quintet_s"]
            row["speedup_cpu_vs_diffsort"] = row["diffsort_cpu_s"] / row["quintet_cpu_s"]
            if row.get("quintet_peak_mib") and row.get("diffsort_peak_mib"):
                row["memory_ratio_vs_diffsort"] = row["quintet_peak_mib"] / row["diffsort_peak_mib"]
        elif "diffsort" in impls:
            row["diffsort_note"] = f"not timed above n = {reference_max_n} (dense O(n^3) products per layer)"
        rows.append(row)
    return {
        "what": "forward + backward of (sorted.sum() + (P * W).sum()), float32, CPU, padding='reference'; "
                "implementations interleaved; median wall-clock (_s) and CPU (_cpu_s) seconds; peak = rise of the process's peak RSS during one "
                "forward + backward (fresh subprocess per case)",
        "threads": threads,
        "repeats": repeats,
        "min_seconds": MIN_SECONDS,
        "max_rounds": MAX_ROUNDS,
        "time_cap_s": time_cap,
        "equal_atol": EQUAL_ATOL,
        "torch": torch.__version__,
        "implementations": impls,
        "rows": rows,
    }
