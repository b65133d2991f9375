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
def _paper_for(relaxation: str) -> str:
    """The paper whose table holds a (network, relaxation) row: the ICLR 2022 paper introduced the
    monotonic relaxations, the ICML 2021 paper the logistic ones."""
    return "2203.09630" if relaxation in ("cauchy", "reciprocal", "optimal") else "2105.04019"


def _paper_columns(network: str, relaxation: str, n: int) -> dict:
    """Published numbers beside one of our rows (``None`` where the corpus did not have them)."""
    from quintet.sorting.paper_numbers import NEURALSORT_GROVER2019, PAPER_RESULTS

    paper = _paper_for(relaxation)
    ours = PAPER_RESULTS.get((paper, network, relaxation, n))
    neural = NEURALSORT_GROVER2019["deterministic"].get(n)
    return {
        "paper": f"arXiv {paper}",
        "paper_exact_match": ours[0] if ours else None,
        "paper_element_wise": ours[1] if ours else None,
        "neuralsort_exact_match": neural[0] if neural else None,
        "neuralsort_element_wise": neural[1] if neural else None,
    }


def _cell(value) -> str:
    return "not found" if value is None else f"{value:.1f}"


def _results_markdown(rows: list[dict], quick: bool) -> str:
    from quintet.core.runs import markdown_table
    from quintet.sorting.paper_numbers import (
        NEURALSORT_GROVER2019,
        NOT_FOUND,
        README_STEEPNESS,
        SCRIPT_DEFAULTS,
    )

    table = markdown_table(
        [{"network": r["network"], "n": r["n"], "relaxation": r["relaxation"],
          "steepness": f"{r['steepness']:g} ({r.get('steepness_source', '?')})", "steps": r["steps"],
          "exact match %": round(100 * r["exact_match"], 1),
          "element-wise %": round(100 * r["element_wise"], 1),
          "paper exact match %": _cell(r["paper_exact_match"]) + f" ({r['paper']})",
          "paper element-wise %": _cell(r["paper_element_wise"]),
          "NeuralSort exact / element-wise % (Grover et al. 2019, Table 1)":
              "-" if r["neuralsort_exact_match"] is None
              else f"{r['neuralsort_exact_match']:.1f} / {r['neuralsort_element_wise']:.1f}",
          "seconds": r["seconds"]} for r in rows])
    scale = ("quick: n = 5 only, a small CNN (16/32 channels), at most 2000 steps of 32 sets "
             "or 9 minutes on one CPU thread"
             if quick else "full: n = 3, 5, 7, 9, 15, 32 for odd-even and bitonic")
    neural_rows = [{"n": n, "deterministic NeuralSort": f"{d[0]:.1f} ({d[1]:.1f})",
                    "stochastic NeuralSort": "{:.1f} ({:.1f})".format(*NEURALSORT_GROVER2019["stochastic"][n])}
                   for n, d in NEURALSORT_GROVER2019["deterministic"].items()]
    readme = ", ".join(f"{net} n = {n}: {beta:g}" for (net, n), beta in README_STEEPNESS.items())
    missing = "\n".join(f"- {item}" for item in NOT_FOUND)
    return (
        "# Ranking supervision on multi-digit MNIST\n\n"
        f"Scale: {scale}. Test split, 1000 fixed sets. Metrics as in the papers: exact match (the "
        "whole set ranked correctly) and element-wise correct rank. The steepness column says where "
        "its value comes from: README = the authors' README command, interpolated = between those "
        "points (not a value from the papers), given = set by hand.\n\n" + table +
        "\n## Beside the papers\n\n"
        "Published numbers were looked up in this workplace's stored corpora "
        "(`src/quintet/sorting/paper_numbers.py` records each source). **Not found** there, and "
        "therefore not shown (never typed in from memory):\n\n" + missing + "\n\n"
        "The ar5iv pages of both papers are stored, but the search returns only their opening "
        "(abstract and introduction), never the results tables or the appendix.\n\n"
        "Found, from the authors' code (Felix-Petersen/diffsort): the experiment script's defaults "
        f"(Adam, lr 10^-3.5, batch {SCRIPT_DEFAULTS['batch_size']}, {SCRIPT_DEFAULTS['steps']:,} steps, "
        f"relaxation {SCRIPT_DEFAULTS['relaxation']}, steepness {SCRIPT_DEFAULTS['steepness']:g}, "
        f"ART lambda {SCRIPT_DEFAULTS['art_lambda']}) and the README's steepness per (network, n): "
        f"{readme}.\n\n"
        "The published reference point on the same task that was found is NeuralSort, Grover et al. "
        "ICLR 2019 (arXiv 1903.08850) Table 1, exact match % (element-wise %) on the same "
        "four-digit MNIST set-sorting task (their CNN and training schedule, not ours):\n\n" + markdown_table(neural_rows) +
        "\nA quick run trains a small fraction of the papers' 100,000 steps at batch 100 (see the "
        "steps column) with a smaller CNN, so its numbers are a lower bound on what the method reaches.\n"
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
    from quintet.sorting import paper_numbers as pn

    run.log_metrics({"paper_numbers": {
        "not_found": list(pn.NOT_FOUND), "script_defaults": pn.SCRIPT_DEFAULTS,
        "readme_steepness": {f"{net}-n{n}": b for (net, n), b in pn.README_STEEPNESS.items()},
        "neuralsort_grover2019_table1": {k: {str(n): v for n, v in d.items()}
                                         for k, d in pn.NEURALSORT_GROVER2019.items()}}})
    source = mnist_source()
    rows, curves = [], {}
    for cfg in configs:
        tag = f"{cfg.network}-n{cfg.n}"
        res = train_ranking(cfg, source, out=out / "work" / tag, log=lambda s, t=tag: typer.echo(f"[{t}] {s}"),
                            time_limit=540 if quick else None)
        res.pop("model")
        curves[tag] = res.pop("curve")
        rows.append({"network": cfg.network, "n": cfg.n, "relaxation": cfg.relaxation, **res,
                     **_paper_columns(cfg.network, cfg.relaxation, cfg.n)})
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
