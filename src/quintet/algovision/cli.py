"""``quintet algovision ...``: sorting, shortest-path and edit-distance supervision, a solver for
cost maps from .npy files; plus ``reproduce`` and ``demo`` for the top-level CLI."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from quintet.core import options
from quintet.core.distributed import current
from quintet.core.errors import QuintetError

app = typer.Typer(help="Relaxed control flow for algorithmic supervision (AlgoVision, NeurIPS 2021).",
                  no_args_is_help=True)

#: upper bound of an inverse temperature β (beyond it the relaxation is the hard algorithm)
MAX_BETA = 1e6


def _sorting_methods() -> tuple[str, ...]:
    from quintet.algovision.sorting_task import SORTING_METHODS

    return SORTING_METHODS


def _path_methods() -> tuple[str, ...]:
    from quintet.algovision.path_task import PATH_METHODS

    return PATH_METHODS


def _train(cfg, train, out: Path, threads: int, keys: tuple[str, ...]) -> None:
    """Check ``cfg``, run ``train(cfg, out)`` in the run folder ``out``, print the metrics ``keys``."""
    import torch

    from quintet.core.runs import Run

    torch.set_num_threads(threads)
    cfg.check()
    result = train(cfg, out)
    if not current().is_main:
        return
    run = Run(out, cfg)
    result.pop("model", None)
    run.log_metrics(result)
    run.finish()
    typer.echo(json.dumps({k: result[k] for k in keys}))


@app.command("train-sorting")
def train_sorting_cmd(
    method: str = options.choice("bubble", _sorting_methods,
                                 "bubble (relaxed bubble sort), odd_even or bitonic (sorting networks).",
                                 kind="sorting method"),
    n: int = typer.Option(5, min=2, max=32, help="Set size."),
    beta: float = options.positive(8.0, "Inverse temperature of the bubble sort's conditions (> 0).", maximum=MAX_BETA),
    steps: int = options.steps(1000, "Training steps."),
    batch_size: int = typer.Option(32, min=1, max=100_000, help="Sets per step."),
    out: Path = options.output_folder(Path("runs/algovision-sorting"), "Run folder (checkpoints; resumes)."),
    seed: int = options.seed(),
    threads: int = options.threads(),
) -> None:
    """Four-digit MNIST sorting supervision (data root needed)."""
    from quintet.algovision.sorting_task import SortingConfig, train_sorting
    from quintet.sorting.ranking import mnist_source

    cfg = SortingConfig(method=method, n=n, beta=beta, steps=steps, batch_size=batch_size, seed=seed)
    _train(cfg, lambda c, o: train_sorting(c, mnist_source(), out=o, log=typer.echo), out, threads,
           ("exact_match", "element_wise", "steps"))


@app.command("train-path")
def train_path_cmd(
    method: str = options.choice("relaxed", _path_methods, "relaxed, regression or blackbox.", kind="path method"),
    beta: float = options.positive(10.0, "Inverse temperature of the relaxed Bellman-Ford (> 0).", maximum=MAX_BETA),
    steps: int = options.steps(600, "Training steps."),
    maps: int = typer.Option(1000, min=1, max=1_000_000, help="Procedural training maps."),
    out: Path = options.output_folder(Path("runs/algovision-path"), "Run folder (checkpoints; resumes)."),
    seed: int = options.seed(),
    threads: int = options.threads(),
) -> None:
    """Shortest-path supervision on procedural 12x12 terrain maps."""
    from quintet.algovision.path_task import PathConfig, train_path

    cfg = PathConfig(method=method, beta=beta, steps=steps, train_maps=maps, seed=seed)
    _train(cfg, lambda c, o: train_path(c, out=o, log=typer.echo), out, threads,
           ("exact_match", "optimal", "cost_ratio", "steps"))


@app.command("train-edit")
def train_edit_cmd(
    length: int = typer.Option(4, min=1, max=16, help="Digits per string."),
    edits: int = typer.Option(4, min=0, max=64, help="At most this many random edits between the two strings."),
    beta: float = options.positive(5.0, "Inverse temperature of the soft minimum (> 0).", maximum=MAX_BETA),
    steps: int = options.steps(500, "Training steps."),
    out: Path = options.output_folder(Path("runs/algovision-edit"), "Run folder (checkpoints; resumes)."),
    seed: int = options.seed(),
    threads: int = options.threads(),
) -> None:
    """Edit-distance supervision on MNIST digit strings (data root needed)."""
    from quintet.algovision.edit_task import EditConfig, train_edit
    from quintet.sorting.ranking import mnist_source

    cfg = EditConfig(length=length, edits=edits, beta=beta, steps=steps, seed=seed)
    _train(cfg, lambda c, o: train_edit(c, mnist_source(), out=o, log=typer.echo), out, threads,
           ("char_accuracy", "distance_mae", "steps"))


@app.command("shortest-path")
def shortest_path_cmd(
    costs: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                 help=".npy file: positive costs, shape (H, W) or (batch, H, W)."),
    out: Path = options.output_file(Path("path.npy"), "Output .npy: path probabilities, same shape.", (".npy",)),
    beta: float = options.positive(10.0, "Inverse temperature (> 0).", maximum=MAX_BETA),
    hard: bool = typer.Option(False, "--hard", help="Discrete Bellman-Ford instead of the relaxation."),
) -> None:
    """Relaxed shortest path (top-left to bottom-right, 8-neighbourhood) of cost maps."""
    import io

    import numpy as np
    import torch

    from quintet.algovision.shortest_path import relaxed_shortest_path
    from quintet.core.io import atomic_write_bytes

    try:
        array = np.load(costs, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise QuintetError(f"cannot read {costs} as a .npy array: {exc}") from None
    if array.ndim not in (2, 3) or not np.issubdtype(array.dtype, np.number):
        raise QuintetError(f"{costs}: expected a numeric array (H, W) or (batch, H, W), got {array.dtype} {array.shape}")
    cost = torch.from_numpy(np.asarray(array, dtype=np.float64))
    if (cost <= 0).any():
        raise QuintetError(f"{costs}: costs must be positive, found minimum {float(cost.min()):g}")
    path, dist = relaxed_shortest_path(cost.reshape(-1, *cost.shape[-2:]), beta, hard=hard)
    buffer = io.BytesIO()
    np.save(buffer, path.reshape(array.shape).numpy())
    atomic_write_bytes(out, buffer.getvalue())
    typer.echo(f"wrote {out}; distance to the target: {dist[:, -1, -1].tolist()}")


# ------------------------------------------------------------------ reproduce / demo
def reproduce(out: Path, quick: bool, seed: int) -> dict:
    """Sorting (n = 3, 5, 7), shortest-path and edit-distance supervision; quick fits ~9 min on one core."""
    from quintet.algovision.reproduce import reproduce as run_reproduction

    return run_reproduction(out, quick, seed, log=typer.echo)


def demo(run) -> str:
    """The README's bubble sort, relaxed and hard; speed against algovision when installed; a relaxed
    shortest path on a procedural map (a few seconds)."""
    import time
    import warnings

    import torch

    from quintet.algovision.plots import path_figure
    from quintet.algovision.programs import bubble_sort_program
    from quintet.algovision.shortest_path import relaxed_shortest_path
    from quintet.algovision.terrain import make_terrain

    x = torch.tensor([[3.0, 1.0, 2.0, 0.5]])
    soft, swaps = bubble_sort_program(beta=5.0)(x)
    hard, hard_swaps = bubble_sort_program(beta=5.0, hard=True)(x)
    values = torch.randn(100, 9, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def best_time(program) -> float:
        times = []
        for _ in range(4):
            start = time.perf_counter()
            a, s = program(values)
            (a.sum() + s.sum()).backward()
            times.append(time.perf_counter() - start)
        return min(times[1:])

    ours = best_time(bubble_sort_program(5.0))
    speed = f"bubble sort n = 9, batch 100, forward + backward: quintet {1e3 * ours:.1f} ms"
    try:
        import algovision

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # algovision indexes with lists
            theirs = best_time(bubble_sort_program(5.0, language=algovision))
        speed += f", algovision 0.1.2 {1e3 * theirs:.1f} ms ({theirs / ours:.1f}x; best of 3 after a warm-up)"
    except ImportError:
        pass
    maps = make_terrain(4, seed=0)

    class TrueCosts(torch.nn.Module):
        def forward(self, images):
            return maps.costs[: len(images)]

    path, _ = relaxed_shortest_path(maps.costs, 10.0)
    run.save_figure(path_figure(maps, {"true costs": TrueCosts()}, 10.0), "algovision_path_demo.png")
    fmt = lambda t: "[" + ", ".join(f"{v:.2f}" for v in t.flatten().tolist()) + "]"  # noqa: E731
    return (
        "## algovision\n\n"
        "Relaxed control flow (Petersen et al. 2021): every comparison of a program is perturbed by "
        "logistic noise and the program returns its expected result, a smooth function of its inputs.\n\n"
        f"- Bubble sort of {fmt(x)} at beta = 5: {fmt(soft)} after {swaps.item():.2f} expected swaps; "
        f"hard: {fmt(hard)} after {hard_swaps.item():.0f} swaps.\n"
        f"- {speed}.\n"
        f"- Relaxed shortest path on a procedural 12 x 12 map with its true costs: path mass "
        f"{path[0].sum().item():.2f} cells, exact path {int(maps.paths[0].sum())} cells.\n\n"
        "![relaxed path](algovision_path_demo.png)\n"
    )
