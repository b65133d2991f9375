"""``quintet reproduce algovision``: sorting, shortest-path and edit-distance supervision at a
scale this machine bears, with results.json, results.md and PNG plots."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import torch

from quintet.algovision.edit_task import EditConfig, train_edit
from quintet.algovision.path_task import PATH_METHODS, PathConfig, train_path
from quintet.algovision.sorting_task import SortingConfig, train_sorting
from quintet.algovision.terrain import make_terrain
from quintet.core.runs import Run, markdown_table

__all__ = ["reproduce", "plan"]

SORT_SIZES = (3, 5, 7)
SORT_METHODS = ("bubble", "odd_even")


def plan(quick: bool, seed: int) -> dict:
    """Configurations and per-run time limits (seconds, ``None`` = none) of one reproduction."""
    if quick:
        sorting = [SortingConfig(method=m, n=n, steps=1500, batch_size=16, width=(8, 16), eval_sets=300,
                                 eval_every=100, seed=seed) for n in SORT_SIZES for m in SORT_METHODS]
        paths = [PathConfig(method=m, train_maps=600, test_maps=200, steps=1500, eval_every=100, seed=seed)
                 for m in PATH_METHODS]
        edit = EditConfig(steps=3000, eval_every=100, seed=seed)
        return {"sorting": sorting, "paths": paths, "edit": edit, "limits": {"sorting": 40, "paths": 45, "edit": 70}}
    sorting = [SortingConfig(method=m, n=n, steps=20000, batch_size=100, width=(32, 64), eval_sets=1000,
                             eval_every=1000, seed=seed) for n in SORT_SIZES for m in SORT_METHODS]
    paths = [PathConfig(method=m, train_maps=10000, test_maps=1000, steps=10000, eval_every=1000, seed=seed)
             for m in PATH_METHODS]
    edit = EditConfig(steps=20000, eval_every=1000, width=(16, 32), seed=seed)
    return {"sorting": sorting, "paths": paths, "edit": edit, "limits": {"sorting": None, "paths": None, "edit": None}}


def _pct(x: float) -> float:
    return round(100 * x, 1)


def reproduce(out: Path, quick: bool, seed: int, log: Callable[[str], None] = print) -> dict:
    from quintet.algovision.plots import edit_figure, path_figure, sorting_figure
    from quintet.sorting.ranking import mnist_source

    torch.set_num_threads(1)
    p = plan(quick, seed)
    limits = p["limits"]
    run = Run(out, {"quick": quick, "seed": seed, "time_limits_s": limits,
                    "sorting": [c.__dict__ for c in p["sorting"]], "paths": [c.__dict__ for c in p["paths"]],
                    "edit": p["edit"].__dict__})
    work = out / "work"
    source = mnist_source()
    sorting, curves = [], {}
    for cfg in p["sorting"]:
        tag = f"sort-{cfg.method}-n{cfg.n}"
        res = train_sorting(cfg, source, out=work / tag, time_limit=limits["sorting"],
                            log=lambda s, t=tag: log(f"[{t}] {s}"))
        res.pop("model")
        curves[tag] = res.pop("curve")
        sorting.append({"method": cfg.method, "n": cfg.n, **res})
        run.log_metrics({"sorting": sorting, "curves": curves})
    data = (make_terrain(p["paths"][0].train_maps, seed=seed), make_terrain(p["paths"][0].test_maps, seed=seed + 1))
    paths, models = [], {}
    for cfg in p["paths"]:
        tag = f"path-{cfg.method}"
        res = train_path(cfg, out=work / tag, time_limit=limits["paths"], data=data,
                         log=lambda s, t=tag: log(f"[{t}] {s}"))
        models[cfg.method] = res.pop("model")
        curves[tag] = res.pop("curve")
        paths.append({"method": cfg.method, **res})
        run.log_metrics({"paths": paths, "curves": curves})
    edit = train_edit(p["edit"], source, out=work / "edit", time_limit=limits["edit"],
                      log=lambda s: log(f"[edit] {s}"))
    edit.pop("model")
    curves["edit"] = edit.pop("curve")
    run.log_metrics({"edit": edit, "curves": curves})
    run.save_figure(sorting_figure(sorting), "algovision_sorting.png")
    run.save_figure(path_figure(data[1], models, p["paths"][0].beta), "algovision_paths.png")
    run.save_figure(edit_figure(curves["edit"]), "algovision_edit.png")
    run.finish(results_markdown(sorting, paths, edit, p, quick))
    shutil.rmtree(work, ignore_errors=True)  # checkpoints are not results
    return {"sorting": sorting, "paths": paths, "edit": edit}


NOT_SHOWN = ("No paper numbers are shown beside ours: the result tables of arXiv 2110.05651 (sorting, "
             "shortest-path and edit-distance supervision) are not reproduced here, and no value is quoted "
             "without its table.")


def results_markdown(sorting: list[dict], paths: list[dict], edit: dict, p: dict, quick: bool) -> str:
    limits = p["limits"]
    scale = (f"Scale (quick): each sorting run stops after {limits['sorting']} s, each shortest-path run after "
             f"{limits['paths']} s, the edit-distance run after {limits['edit']} s of training on one CPU thread; "
             "the steps columns say how far each got." if quick else "Scale (full): the step counts in the tables.")
    sort_rows = [{"n": r["n"], "method": "relaxed bubble sort (swap count)" if r["method"] == "bubble"
                  else f"sorting network ({r['method']}, quintet.sorting)",
                  "steps": r["steps"], "exact match %": _pct(r["exact_match"]),
                  "element-wise %": _pct(r["element_wise"]), "seconds": r["seconds"]} for r in sorting]
    names = {"relaxed": "relaxed Bellman-Ford (ours, path supervision)",
             "regression": "cost regression (sees the true costs)",
             "blackbox": "blackbox differentiation of Dijkstra (Vlastelica et al. 2020)"}
    path_rows = [{"method": names[r["method"]], "steps": r["steps"], "exact path %": _pct(r["exact_match"]),
                  "optimal path %": _pct(r["optimal"]), "cost ratio": round(r["cost_ratio"], 4),
                  "seconds": r["seconds"]} for r in paths]
    cfg = p["edit"]
    pcfg = p["paths"][0]
    return (
        "# Algorithmic supervision with relaxed control flow\n\n"
        f"{scale} {NOT_SHOWN}\n\n"
        "## Sorting supervision, four-digit MNIST\n\n"
        "Sets of n four-digit numbers (images 28 x 112), a CNN (quintet.sorting.ranking.ScoreCNN, channels "
        f"{tuple(p['sorting'][0].width)}) scores each image; batch {p['sorting'][0].batch_size} sets, Adam "
        f"lr 10^-3.5. Relaxed bubble sort: the scores arranged in the true order go through relaxed_bubble_sort "
        "(the bubble-sort program as a loop), "
        f"loss = expected number of swaps, beta = {p['sorting'][0].beta:g}. Metrics on "
        f"{p['sorting'][0].eval_sets} fixed test sets.\n\n"
        + markdown_table(sort_rows) +
        "\n![sorting](algovision_sorting.png)\n\n"
        "## Shortest-path supervision, procedural terrain\n\n"
        f"{pcfg.size} x {pcfg.size} maps of five terrain types with hidden costs, {pcfg.tile} px per cell, "
        f"{pcfg.train_maps} training and {pcfg.test_maps} test maps; top-left to bottom-right, 8-neighbourhood. "
        f"Relaxed Bellman-Ford: beta = {pcfg.beta:g}, {2 * pcfg.size} sweeps, MSE between relaxed and true path. "
        f"Blackbox: lambda = {pcfg.blackbox_lambda:g}, Hamming loss. All methods are evaluated by Dijkstra on the "
        "predicted costs: exact path match (the same cells as the reference path), optimal path (no dearer than "
        "the optimum; terrain costs take five values, so ties between paths are common) and true cost of the "
        "predicted path / optimal cost.\n\n"
        + markdown_table(path_rows) +
        "\n![paths](algovision_paths.png)\n\n"
        "## Edit-distance supervision, MNIST digit strings\n\n"
        f"Pairs of {cfg.length}-digit strings (the second a copy of the first with up to {cfg.edits} random "
        f"edits), a CNN (channels {tuple(cfg.width)}) classifies each digit; loss = (relaxed Levenshtein "
        f"distance, beta = {cfg.beta:g} - true distance)^2. No labels are used. Character accuracy on "
        f"{cfg.eval_digits} test digits after the best one-to-one renaming of classes.\n\n"
        + markdown_table([{"steps": edit["steps"], "character accuracy %": _pct(edit["char_accuracy"]),
                           "hard distance MAE (200 test pairs)": round(edit["distance_mae"], 3),
                           "seconds": edit["seconds"]}]) +
        "\nChance level of the matched accuracy is about 11 % (the most frequent digit).\n\n"
        "![edit distance](algovision_edit.png)\n"
    )
