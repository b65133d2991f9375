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
FULL_SIZES = (3, 5, 7, 9, 15, 32)


def _threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise QuintetError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


@app.command("bench")
def bench_cmd(
    sizes: str = typer.Option("32,256", help="Comma-separated n values (the full set is 32,256,1024)."),
    network: str = typer.Option("bitonic", help="odd_even or bitonic."),
    repeats: int = typer.Option(5, help="Timed runs per case (median reported)."),
    out: Path = typer.Option(Path("benchmarks/results/sorting.json"), help="JSON output."),
    threads: int = typer.Option(2, help="torch threads."),
    memory: bool = typer.Option(False, help="Also measure peak memory (one subprocess per case)."),
) -> None:
    """Forward + backward time of quintet vs diffsort (and torchsort if installed)."""
    from quintet.sorting.bench import run_benchmark

    try:
        ns = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise QuintetError(f"--sizes must be comma-separated integers, got {sizes!r}") from None
    _threads(threads)
    result = run_benchmark(ns, network=network, repeats=repeats, memory=memory, threads=threads, log=typer.echo)
    from quintet.core.io import atomic_write_json

    atomic_write_json(out, result)
    typer.echo(f"wrote {out}")


@app.command("train-ranking")
def train_cmd(
    n: int = typer.Option(QUICK_N, help="Set size."),
    network: str = typer.Option("odd_even", help="odd_even or bitonic."),
    relaxation: str = typer.Option("cauchy", help="logistic, logistic_phi, gaussian, reciprocal, cauchy, optimal."),
    steepness: Optional[float] = typer.Option(None, help="Inverse temperature (default: per-n table)."),
    steps: int = typer.Option(2000, help="Training steps."),
    batch_size: int = typer.Option(32, help="Sets per step."),
    out: Path = typer.Option(Path("runs/sorting-ranking"), help="Run folder (checkpoints; resumes)."),
    source: str = typer.Option("mnist", help="mnist (data root) or digits (scikit-learn 8x8)."),
    threads: int = typer.Option(1, help="torch threads."),
    seed: int = typer.Option(0),
) -> None:
    """Train a CNN from orderings of multi-digit numbers only (ICML 2021 Sec. 5.1)."""
    from quintet.core.runs import Run
    from quintet.sorting.ranking import (
        RankingConfig,
        mnist_source,
        sklearn_digits_source,
        train_ranking,
    )

    if source not in ("mnist", "digits"):
        raise QuintetError(f"unknown source {source!r}; expected one of: digits, mnist")
    _threads(threads)
    cfg = RankingConfig(n=n, network=network, relaxation=relaxation, steepness=steepness, steps=steps,
                        batch_size=batch_size, seed=seed, source=source)
    data = mnist_source() if source == "mnist" else sklearn_digits_source(seed)
    run = Run(out, cfg)
    result = train_ranking(cfg, data, out=out, log=typer.echo)
    result.pop("model")
    run.log_metrics(result)
    run.finish()
    typer.echo(json.dumps({k: result[k] for k in ("exact_match", "element_wise", "steps")}))


@app.command("plot")
def plot_cmd(
    out: Path = typer.Option(Path("runs/sorting-plots"), help="Folder for the PNGs."),
    n: int = typer.Option(12, help="Length of the example vector."),
    network: str = typer.Option("bitonic"),
    relaxation: str = typer.Option("cauchy"),
    steepness: float = typer.Option(4.0),
    seed: int = typer.Option(0),
) -> None:
    """PNG of each relaxation's sigmoid and a heatmap of P for a random example."""
    import torch

    from quintet.core.runs import Run
    from quintet.sorting.plots import permutation_figure, sigmoid_figure

    run = Run(out)
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    paths = [run.save_figure(sigmoid_figure(), "sorting_sigmoids.png"),
             run.save_figure(permutation_figure(x, network, relaxation, steepness), "sorting_permutation.png")]
    for p in paths:
        typer.echo(str(p))


# ------------------------------------------------------------------ reproduce / demo
def _results_markdown(rows: list[dict], quick: bool) -> str:
    from quintet.core.runs import markdown_table

    table = markdown_table(
        [{"network": r["network"], "n": r["n"], "relaxation": r["relaxation"], "steepness": r["steepness"],
          "steps": r["steps"], "exact match %": round(100 * r["exact_match"], 1),
          "element-wise %": round(100 * r["element_wise"], 1), "seconds": r["seconds"]} for r in rows])
    scale = ("quick: n = 5 only, a small CNN (16/32 channels), at most 2000 steps of 32 sets "
             "or 9 minutes on one CPU thread"
             if quick else "full: n = 3, 5, 7, 9, 15, 32 for odd-even and bitonic")
    return (
        "# Ranking supervision on multi-digit MNIST\n\n"
        f"Scale: {scale}. Test split, 1000 fixed sets. Metrics as in the papers: exact match (the "
        "whole set ranked correctly) and element-wise correct rank.\n\n" + table +
        "\n## Beside the papers\n\n"
        "The papers train 100,000 steps at batch 100 with the 32/64-channel CNN (ICML 2021 Table 1, "
        "ICLR 2022 Table 2 report exact match (element-wise) per n).  Their numbers were not "
        "reachable from this offline workplace, so they are not typed in here; compare against "
        "the tables in arXiv 2105.04019 and 2203.09630 directly.  A quick run trains a small fraction "
        "of the papers' steps (see the steps column), so its numbers are a lower bound on what the method reaches.\n"
    )


def reproduce(out: Path, quick: bool, seed: int) -> dict:
    """Multi-digit MNIST ranking from orderings only; quick = n = 5, odd-even, ~8 min on 1 core."""
    import torch

    from quintet.core.plotting import plt
    from quintet.core.runs import Run
    from quintet.sorting.ranking import RankingConfig, mnist_source, train_ranking

    torch.set_num_threads(1)
    if quick:
        configs = [RankingConfig(n=QUICK_N, network="odd_even", steps=2000, seed=seed)]
    else:
        configs = [RankingConfig(n=n, network=net, steps=20000, batch_size=100, width=(32, 64), seed=seed)
                   for net in ("odd_even", "bitonic") for n in FULL_SIZES]
    run = Run(out, {"quick": quick, "seed": seed, "runs": [c.__dict__ for c in configs]})
    source = mnist_source()
    rows, curves = [], {}
    for cfg in configs:
        tag = f"{cfg.network}-n{cfg.n}"
        res = train_ranking(cfg, source, out=out / "work" / tag, log=lambda s, t=tag: typer.echo(f"[{t}] {s}"),
                            time_limit=540 if quick else None)
        res.pop("model")
        curves[tag] = res.pop("curve")
        rows.append({"network": cfg.network, "n": cfg.n, "relaxation": cfg.relaxation, **res})
        run.log_metrics({"results": rows, "curves": curves})
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for tag, curve in curves.items():
        ax.plot([c["step"] for c in curve], [100 * c["exact_match"] for c in curve], marker="o", label=tag)
    ax.set(xlabel="training step", ylabel="exact match % (300 test sets)", title="ranking supervision")
    ax.legend()
    run.save_figure(fig, "sorting_training_curve.png")
    run.finish(_results_markdown(rows, quick) + "\n![training curve](sorting_training_curve.png)\n")
    import shutil

    shutil.rmtree(out / "work", ignore_errors=True)  # checkpoints are not results
    return {"results": rows}


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
    # speed: quintet vs the reference at n = 128 (reference only if installed)
    v = torch.randn(32, 128, requires_grad=True)
    start = time.perf_counter()
    s, p = diffsort(v, network="bitonic")
    (s.sum() + p.pow(2).sum()).backward()
    ours = time.perf_counter() - start
    speed = f"quintet forward+backward, bitonic n = 128, batch 32: {ours * 1e3:.0f} ms"
    try:
        import diffsort as reference

        start = time.perf_counter()
        s, p = reference.DiffSortNet("bitonic", 128)(v)
        (s.sum() + p.pow(2).sum()).backward()
        theirs = time.perf_counter() - start
        speed += f"; diffsort 0.2.0: {theirs * 1e3:.0f} ms ({theirs / ours:.0f}x)"
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
