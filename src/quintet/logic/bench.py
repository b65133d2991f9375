"""Speed of quintet.logic against difflogic 0.1.0 (its CPU paths: ``implementation="python"`` and
``CompiledLogicNet``), in one process on the same inputs, outputs checked equal before timing; the
two packages run in turn within every repeat, and inference is timed in wall-clock and in the
calling thread's CPU time."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from typing import Callable

import numpy as np
import torch

from quintet.logic.compiled import CompiledLogicNet
from quintet.logic.layers import LogicLayer, logic_network
from quintet.logic.netlist import class_counts_numpy


def peer_available() -> bool:
    try:
        import difflogic  # noqa: F401
    except ImportError:
        return False
    return True


def peer_copy(model: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same network as difflogic modules (python implementation): weights and wiring copied."""
    import difflogic

    layers = []
    for m in model:
        if isinstance(m, LogicLayer):
            ref = difflogic.LogicLayer(m.in_dim, m.out_dim, device="cpu", implementation="python")
            ref.weights.data.copy_(m.weights.data)
            ref.indices = (m.idx_a.clone(), m.idx_b.clone())
            layers.append(ref)
        else:
            layers.append(difflogic.GroupSum(m.k, m.tau, device="cpu"))
    return torch.nn.Sequential(*layers).train(model.training)


def _quiet(fn: Callable):
    """Run ``fn`` with stdout swallowed (difflogic's python layer prints on every call)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def _timed(fns: dict[str, Callable], repeats: int, warmup: int = 1) -> dict[str, tuple[float, float]]:
    """Median wall-clock and thread-CPU seconds of each function; every repeat runs all of them in
    turn, so that they are measured under the same conditions."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu[k].append(time.thread_time() - start_cpu)
            wall[k].append(time.perf_counter() - start)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def _median_time(fn: Callable, repeats: int, warmup: int = 1) -> float:
    return _timed({"fn": fn}, repeats, warmup)["fn"][0]


def training_step_case(in_dim: int = 784, width: int = 8000, depth: int = 4, batch: int = 128,
                       repeats: int = 5, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """One Adam step (forward, backward, update) of quintet and difflogic on the same network."""
    torch.manual_seed(seed)
    ours = logic_network(in_dim, width, depth, 10, tau=10.0, seed=seed).train()
    x = torch.rand(batch, in_dim, generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(seed + 1))
    row = {"case": f"train step {depth}x{width}, {in_dim} inputs, batch {batch}", "gates": depth * width}

    def step(model, opt):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps: dict[str, Callable] = {}
    if peer_available():
        ref = peer_copy(ours)
        out_q, out_r = ours(x), _quiet(lambda: ref(x))
        g = torch.randn_like(out_q)
        grads_q = torch.autograd.grad(out_q, [m.weights for m in ours if isinstance(m, LogicLayer)], g)
        grads_r = _quiet(lambda: torch.autograd.grad(out_r, [m.weights for m in ref if hasattr(m, "weights")], g))
        row["max_abs_diff_output"] = float((out_q - out_r).detach().abs().max())
        row["max_abs_diff_grad"] = max(float((a - b).abs().max()) for a, b in zip(grads_q, grads_r))
        opt_r = torch.optim.Adam(ref.parameters(), lr=0.01)
        steps["difflogic"] = lambda: _quiet(lambda: step(ref, opt_r))
    opt_q = torch.optim.Adam(ours.parameters(), lr=0.01)
    steps["quintet"] = lambda: step(ours, opt_q)
    times = _timed(steps, repeats)
    row["quintet_s"] = times["quintet"][0]
    if "difflogic" in times:
        row["difflogic_s"] = times["difflogic"][0]
        log(f"difflogic python: {row['difflogic_s'] * 1e3:.1f} ms/step")
    log(f"quintet: {row['quintet_s'] * 1e3:.1f} ms/step")
    if "difflogic_s" in row:
        row["speedup_vs_difflogic"] = row["difflogic_s"] / row["quintet_s"]
    return row


def inference_case(x: np.ndarray, width: int = 8000, depth: int = 6, repeats: int = 3, seed: int = 0,
                   peer: bool = True, peer_opt_level: int = 1, log: Callable[[str], None] = print) -> dict:
    """Discretised inference on ``x`` (N, in_dim bits): quintet C, quintet NumPy, difflogic's
    ``CompiledLogicNet``; class counts checked equal to the PyTorch eval-mode model. Samples per
    second in wall-clock time and per CPU second of the calling thread (one core)."""
    n, in_dim = x.shape
    model = logic_network(in_dim, width, depth, 10, tau=1.0, seed=seed).eval()
    row = {"case": f"inference {depth}x{width}, {in_dim} inputs, {n} samples", "gates": depth * width, "samples": n}
    with torch.no_grad():
        expected = model(torch.from_numpy(x[:2000]).float()).round().int().numpy()
    compiled = CompiledLogicNet.from_model(model, backend="c", use_cache=False)  # a fresh compile
    row["quintet_compile_s"] = round(compiled.compile_seconds, 3)
    row["quintet_equals_torch"] = bool(np.array_equal(compiled.class_counts(x[:2000]), expected))
    row["numpy_equals_torch"] = bool(np.array_equal(class_counts_numpy(compiled.net, x[:2000]), expected))
    runs: dict[str, Callable] = {"quintet_c": lambda: compiled.class_counts(x)}
    if peer and peer_available():
        import difflogic

        ref = difflogic.CompiledLogicNet(peer_copy(model), num_bits=64, cpu_compiler="gcc")
        start = time.perf_counter()
        _quiet(lambda: ref.compile(opt_level=peer_opt_level))
        row["difflogic_compile_s"] = round(time.perf_counter() - start, 3)
        row["difflogic_opt_level"] = peer_opt_level
        xb = x.astype(bool)
        row["difflogic_equals_torch"] = bool(np.array_equal(ref(xb[:2000]).numpy(), expected))
        runs["difflogic"] = lambda: ref(xb)
    for name, (wall, cpu) in _timed(runs, repeats).items():
        row[f"{name}_samples_per_s"], row[f"{name}_samples_per_cpu_s"] = n / wall, n / cpu
    log(f"quintet C: {row['quintet_c_samples_per_s'] / 1e6:.2f} M samples/s, "
        f"{row['quintet_c_samples_per_cpu_s'] / 1e6:.2f} M per CPU second (compile {row['quintet_compile_s']} s)")
    if "difflogic" in runs:
        row["speedup_vs_difflogic"] = row["quintet_c_samples_per_s"] / row["difflogic_samples_per_s"]
        row["speedup_vs_difflogic_cpu"] = row["quintet_c_samples_per_cpu_s"] / row["difflogic_samples_per_cpu_s"]
        log(f"difflogic compiled (-O{peer_opt_level}): {row['difflogic_samples_per_s'] / 1e6:.2f} M samples/s, "
            f"{row['difflogic_samples_per_cpu_s'] / 1e6:.2f} M per CPU second (compile {row['difflogic_compile_s']} s)")
    part = x[: min(n, 20_000)]
    row["quintet_numpy_samples_per_s"] = len(part) / _median_time(lambda: class_counts_numpy(compiled.net, part), 1)
    log(f"quintet NumPy: {row['quintet_numpy_samples_per_s'] / 1e6:.3f} M samples/s")
    return row


def small_batches(width: int = 8000, depth: int = 6, in_dim: int = 784) -> dict:
    """Compiled predictions at batch sizes 1 and 31 equal the PyTorch model's."""
    model = logic_network(in_dim, width, depth, 10, seed=1).eval()
    net = CompiledLogicNet.from_model(model)
    out = {}
    for n in (1, 31):
        x = np.random.default_rng(n).integers(0, 2, (n, in_dim)).astype(np.uint8)
        with torch.no_grad():
            expected = model(torch.from_numpy(x).float()).argmax(1).numpy()
        out[f"batch_{n}_equal"] = bool(np.array_equal(net.predict(x), expected))
    return out


def mnist_bits(samples: int) -> tuple[np.ndarray, str]:
    """``samples`` thresholded MNIST test images (repeated as needed), or random bits without data."""
    from quintet.core.errors import QuintetError
    from quintet.logic.data import binarize_mnist

    try:
        from quintet.datasets.mnist import load_mnist

        images, _ = load_mnist("test")
        bits, source = binarize_mnist(images), "MNIST test images, thresholded"
    except QuintetError:
        bits, source = np.random.default_rng(0).integers(0, 2, (10_000, 784)).astype(np.uint8), "random bits"
    reps = -(-samples // len(bits))
    return np.ascontiguousarray(np.tile(bits, (reps, 1))[:samples]), source


def run_benchmark(repeats: int = 5, samples: int = 100_000, peer_opt_level: int = 1,
                  log: Callable[[str], None] = print) -> dict:
    """All cases; the JSON written to benchmarks/results/logic.json."""
    import os
    import platform

    x, source = mnist_bits(samples)
    rows = [training_step_case(repeats=repeats, log=log),
            inference_case(x, width=8000, depth=4, repeats=repeats, peer=True, peer_opt_level=peer_opt_level, log=log),
            inference_case(x, width=8000, depth=6, repeats=repeats, peer=False, log=log)]
    return {"rows": rows, "small_batches": small_batches(), "inputs": source,
            "peer": "difflogic 0.1.0 (pure-Python path; tools/install_difflogic.py)" if peer_available()
            else "difflogic not installed",
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
