"""``quintet sort ...``: benchmark, ranking-supervision training, plots; plus ``reproduce`` and
``demo`` for the top-level CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from quintet.core.errors import QuintetError

app = typer.Typer(help="Differentiable sorting networks (diffsort) and ranking supervision.",
                  no_args_is_help=True)

QUICK_N = 5
SEED = typer.Option(0, min=0, max=2**31 - 1, help="Random seed.")
THREADS_MAX = 256


def _sizes(text: str, option: str) -> list[int]:
    try:
        ns = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise QuintetError(f"{option} must be comma-separated integers, got {text!r}") from None
    if not ns or min(ns) < 2:
        raise QuintetError(f"{option} must list sizes >= 2, got {text!r}")
    return ns


def _folder(path: Path, option: str) -> Path:
    """Create the output folder ``path`` now, before any data is read (one line if impossible)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuintetError(f"{option} {path}: cannot create the folder ({exc.strerror})") from None
    return path


def _device(name: str) -> str:
    import torch

    try:
        torch.empty(0, device=torch.device(name))
    except (RuntimeError, TypeError, AssertionError):
        raise QuintetError(f"--device {name!r} is not available here; expected cpu or an available cuda device") \
            from None
    return name


@app.command("bench")
def bench_cmd(
    sizes: str = typer.Option("32,256", help="Comma-separated n values."),
    network: str = typer.Option("bitonic", help="odd_even or bitonic."),
    repeats: int = typer.Option(5, min=1, max=1000, help="Timed rounds per case at least (median reported)."),
    out: Optional[Path] = typer.Option(None, dir_okay=False, help="JSON output (default: "
                                                                  "runs/sorting-bench-<time>.json)."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
    threads: int = typer.Option(2, min=1, max=THREADS_MAX, help="torch threads."),
    memory: bool = typer.Option(False, help="Also measure peak memory (one subprocess per case)."),
) -> None:
    """Forward + backward time of quintet vs diffsort (and torchsort if installed)."""
    import time

    import torch

    from quintet.core.io import atomic_write_json
    from quintet.sorting.bench import check_settings, run_benchmark

    ns = _sizes(sizes, "--sizes")
    check_settings(ns, network, repeats)
    if out is None:
        out = _folder(Path("runs"), "--out") / f"sorting-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if not out.parent.is_dir():
        raise QuintetError(f"--out {out}: the folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise QuintetError(f"--out {out} exists; pass --overwrite to replace it or choose another --out")
    torch.set_num_threads(threads)
    result = run_benchmark(ns, network=network, repeats=repeats, memory=memory, threads=threads, log=typer.echo)
    atomic_write_json(out, result)
    typer.echo(f"wrote {out}")


def _source(name: str, seed: int):
    from quintet.sorting.ranking import mnist_source, sklearn_digits_source

    return mnist_source() if name == "mnist" else sklearn_digits_source(seed)


@app.command("train-ranking")
def train_cmd(
    n: int = typer.Option(QUICK_N, min=2, max=100_000, help="Set size."),
    network: str = typer.Option("odd_even", help="odd_even or bitonic."),
    relaxation: str = typer.Option("cauchy", help="logistic, logistic_phi, gaussian, reciprocal, cauchy, optimal."),
    steepness: Optional[float] = typer.Option(None, min=1e-6, max=1e6,
                                              help="Inverse temperature (default: per-n table)."),
    steps: int = typer.Option(2000, min=1, max=10_000_000, help="Training steps."),
    batch_size: int = typer.Option(32, min=1, max=100_000, help="Sets per step."),
    ties: bool = typer.Option(False, help="Draw digits independently (sets may hold equal numbers)."),
    valid_size: int = typer.Option(0, min=0, max=59_999,
                                   help="Training images held out for validation (papers: 5000)."),
    out: Path = typer.Option(Path("runs/sorting-ranking"), file_okay=False,
                             help="Run folder (checkpoints; resumes)."),
    source: str = typer.Option("mnist", help="mnist (data root) or digits (scikit-learn 8x8)."),
    max_memory: Optional[float] = typer.Option(None, min=0.001, max=1e6,
                                               help="Refuse runs estimated above this many GiB "
                                                    "(default: the memory available)."),
    threads: int = typer.Option(1, min=1, max=THREADS_MAX, help="torch threads."),
    seed: int = SEED,
) -> None:
    """Train a CNN from orderings of multi-digit numbers only (ICML 2021 Sec. 5.1)."""
    import torch

    from quintet.core.distributed import current
    from quintet.core.runs import Run
    from quintet.sorting.networks import resolve_network
    from quintet.sorting.ranking import RankingConfig, check_memory, train_ranking
    from quintet.sorting.relaxations import resolve_relaxation

    # everything is checked before any data is read or memory allocated
    resolve_network(network)
    resolve_relaxation(relaxation)
    if source not in ("mnist", "digits"):
        raise QuintetError(f"unknown --source {source!r}; expected one of: digits, mnist")
    cfg = RankingConfig(n=n, network=network, relaxation=relaxation, steepness=steepness, steps=steps,
                        batch_size=batch_size, seed=seed, source=source, ties=ties, valid_size=valid_size)
    limit = None if max_memory is None else int(max_memory * 2**30)
    check_memory(cfg, (8, 8) if source == "digits" else (28, 28), limit)
    _folder(out, "--out")
    torch.set_num_threads(threads)
    result = train_ranking(cfg, _source(source, seed), out=out, log=typer.echo, progress=True, max_memory=limit)
    result.pop("model")
    if not current().is_main:  # under `accelerate launch` the main process writes the run
        return
    run = Run(out, cfg)
    run.log_metrics(result)
    run.finish()
    typer.echo(json.dumps({k: result[k] for k in ("exact_match", "element_wise", "steps")}))


@app.command("protocol")
def protocol_cmd(
    out: Path = typer.Option(Path("runs/sorting-protocol"), file_okay=False,
                             help="Folder for results.json, results.md, PNG."),
    work: Optional[Path] = typer.Option(None, file_okay=False,
                                        help="Checkpoint folder (default: OUT/work); resumes."),
    budget_minutes: Optional[float] = typer.Option(None, min=0.0, max=60 * 24 * 30,
                                                   help="Stop training after this many minutes (default: none)."),
    sizes: str = typer.Option("3,5,7", help="Comma-separated set sizes."),
    networks: str = typer.Option("odd_even,bitonic", help="Comma-separated networks."),
    steps: int = typer.Option(100_000, min=1, max=10_000_000, help="Steps per run (the papers: 100 000)."),
    piece: int = typer.Option(50, min=1, max=10_000_000, help="Steps per run before moving on to the next run."),
    test_sets: int = typer.Option(2000, min=1, max=100_000, help="Test sets scored at the end (the script: 10 000)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    threads: int = typer.Option(1, min=1, max=THREADS_MAX, help="torch threads."),
    seed: int = SEED,
) -> None:
    """The ranking experiment at the papers' protocol (batch 100, their CNN, 55k/5k split, test at the
    best validation step), trained round-robin in resumable pieces."""
    import torch

    from quintet.sorting.networks import resolve_network
    from quintet.sorting.protocol import protocol_config, run_protocol
    from quintet.sorting.ranking import mnist_source
    from quintet.sorting.report import write_report

    ns = _sizes(sizes, "--sizes")
    nets = [resolve_network(s.strip()) for s in networks.split(",") if s.strip()]
    if not nets:
        raise QuintetError(f"--networks must list odd_even and/or bitonic, got {networks!r}")
    _device(device)
    work = _folder(work or out / "work", "--work")
    _folder(out, "--out")
    torch.set_num_threads(threads)
    configs = [protocol_config(n, net, seed=seed, steps=steps, eval_sets=test_sets) for net in nets for n in ns]
    budget = None if budget_minutes is None else 60 * budget_minutes
    results = run_protocol(configs, mnist_source(), work, budget_s=budget, piece=piece,
                           log=typer.echo, progress=True, device=device)
    scale = (f"Trained on {threads} CPU thread(s) for a budget of {budget_minutes:g} minutes, round-robin "
             f"in pieces of {piece} steps." if budget_minutes is not None else f"Trained to {steps:,} steps.")
    write_report(out, configs, results, scale, {"budget_minutes": budget_minutes, "piece": piece, "seed": seed,
                                                "threads": threads, "device": device})
    typer.echo(f"wrote {out / 'results.md'}")


@app.command("plot")
def plot_cmd(
    out: Path = typer.Option(Path("runs/sorting-plots"), file_okay=False, help="Folder for the PNGs."),
    n: int = typer.Option(12, min=2, max=64, help="Length of the example vector."),
    network: str = typer.Option("bitonic", help="odd_even or bitonic."),
    relaxation: str = typer.Option("cauchy", help="logistic, logistic_phi, gaussian, reciprocal, cauchy, optimal."),
    steepness: float = typer.Option(4.0, min=1e-6, max=1e6, help="Inverse temperature."),
    seed: int = SEED,
) -> None:
    """PNG of each relaxation's sigmoid and a heatmap of P for a random example."""
    import torch

    from quintet.core.runs import Run
    from quintet.sorting.plots import permutation_figure, sigmoid_figure

    x = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    figure = permutation_figure(x, network, relaxation, steepness)  # validates before writing
    run = Run(_folder(out, "--out"))
    paths = [run.save_figure(sigmoid_figure(), "sorting_sigmoids.png"),
             run.save_figure(figure, "sorting_permutation.png")]
    for p in paths:
        typer.echo(str(p))


# ------------------------------------------------------------------ reproduce / demo
def reproduce(out: Path, quick: bool, seed: int) -> dict:
    """The ranking experiment at the papers' protocol for n = 3, 5, 7, odd-even and bitonic; quick:
    6 minutes of training in all on one CPU thread, else the papers' 100 000 steps per run."""
    import shutil

    import torch

    from quintet.sorting.protocol import (
        PROTOCOL_NETWORKS,
        PROTOCOL_SIZES,
        protocol_config,
        run_protocol,
    )
    from quintet.sorting.ranking import mnist_source
    from quintet.sorting.report import write_report

    torch.set_num_threads(1)
    test_sets = 500 if quick else 10_000
    configs = [protocol_config(n, net, seed=seed, eval_sets=test_sets) for net in PROTOCOL_NETWORKS
               for n in PROTOCOL_SIZES]
    budget, piece = (360, 10) if quick else (None, 1000)
    results = run_protocol(configs, mnist_source(), out / "work", budget_s=budget, piece=piece,
                           log=typer.echo)
    scale = ("Quick: 6 minutes of training in all on one CPU thread, round-robin in pieces of 10 steps; "
             "500 test sets." if quick else "Full: 100 000 steps per run; 10 000 test sets.")
    metrics = write_report(out, configs, results, scale, {"quick": quick, "seed": seed})
    shutil.rmtree(out / "work", ignore_errors=True)  # checkpoints are not results
    return metrics


def demo(run) -> str:
    """Sigmoids, a P heatmap, a speed comparison at n = 256 and ranking supervision on
    scikit-learn's 8x8 digits (n = 5, ~15 s)."""
    import time

    import torch

    from quintet.sorting.functional import diffsort
    from quintet.sorting.plots import permutation_figure, sigmoid_figure
    from quintet.sorting.ranking import RankingConfig, sklearn_digits_source, train_ranking

    run.save_figure(sigmoid_figure(), "sorting_sigmoids.png")
    x = torch.randn(12, generator=torch.Generator().manual_seed(0))
    run.save_figure(permutation_figure(x, "bitonic", "cauchy", 4.0), "sorting_permutation.png")
    # speed: quintet vs the reference at n = 128 (reference only if installed), best of 3 after a warm-up
    v = torch.randn(32, 128, requires_grad=True)

    def best_time(sort_fn) -> float:
        times = []
        for _ in range(4):
            start = time.perf_counter()
            s, p = sort_fn(v)
            (s.sum() + p.pow(2).sum()).backward()
            times.append(time.perf_counter() - start)
        return min(times[1:])

    ours = best_time(lambda t: diffsort(t, network="bitonic"))
    speed = f"quintet forward+backward, bitonic n = 128, batch 32: {ours * 1e3:.0f} ms"
    try:
        import diffsort as reference

        theirs = best_time(reference.DiffSortNet("bitonic", 128))
        speed += f"; diffsort 0.2.0: {theirs * 1e3:.0f} ms ({theirs / ours:.0f}x, best of 3 after a warm-up)"
    except ImportError:
        pass
    cfg = RankingConfig(n=5, steps=300, batch_size=32, eval_every=100, eval_sets=500, width=(8, 16), lr=3e-3,
                        source="sklearn-digits")
    res = train_ranking(cfg, sklearn_digits_source(), log=lambda s: None, time_limit=20)
    return (
        "## sorting\n\n"
        "Differentiable sorting networks (Petersen et al. 2021/2022): a relaxed bitonic / odd-even "
        "network returns softly sorted values and a doubly-stochastic permutation matrix P.\n\n"
        f"- {speed}.\n"
        f"- Ranking supervision on scikit-learn digits (sets of 5 four-digit numbers, trained on orderings "
        f"only, {res['steps']} steps, {res['seconds']} s): exact match {100 * res['exact_match']:.1f}%, "
        f"element-wise {100 * res['element_wise']:.1f}% (chance: 0.8% / 20%).\n\n"
        "![sigmoids](sorting_sigmoids.png)\n![P](sorting_permutation.png)\n"
    )
