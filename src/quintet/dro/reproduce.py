"""``quintet reproduce dro``: the BiasedSST comparison (paper Section 5) under two protocols, over
3 seeds, on the authors' SST-2 files.

* current protocol: our recipe (Adam, model lr 1e-3, adversary 1e-4, constant, no clipping, mean
  loss); Group DRO with shuffled batches, the updated ``q`` and ``eta_q = 0.01``; selection by the
  minmax rule applied after training over every epoch, the pool being the ratio-DRO adversaries of
  the same seed for every method.
* authors' protocol (``pmichel31415/P-DRO``), which also trains P-DRO with its generative
  adversary (Michel et al., 2021; :mod:`quintet.dro.generative`): their recipe (AdamW for both players at one rate,
  linear decay, clipping at 10, summed ratio loss); Group DRO with equal group sampling, ``q``
  before the update and ``eta_q = 0.1``; the greedy in-training minmax selection with each method's
  own pool (ratio DRO, P-DRO: their adversaries; CVaR / chi-square / KL: their best responses on the
  validation losses; ERM and Group DRO: the uniform weighting only; Topic CVaR: worst-topic
  validation accuracy), then the cross-run global minmax between the two ratio-DRO variants.

Every method keeps every rule's pick, so the effect of the recipe alone and of the selection alone
can be read off the same runs. Runs checkpoint into ``out/.checkpoints`` and finished runs are
reused when the experiment is run again.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from quintet.dro.experiments import PDRO_RANGES, TrainConfig, selected, train_on
from quintet.dro.selection import global_minmax_select, minmax_select

# scale -> (text model, n_train, epochs)
SCALES = {"quick": ("boe", 10000, 4), "full": ("bilstm", None, 10)}
PROTOCOLS: dict[str, dict[str, Any]] = {
    "current": {"recipe": "ours", "eta_q": 0.01, "rule": "minmax",
                "methods": ("ratio", "ratio-selfnorm", "erm", "cvar", "group-dro", "group-uniform", "pdro")},
    "authors": {"recipe": "authors", "eta_q": 0.1, "rule": "greedy-minmax",
                "methods": ("ratio", "ratio-selfnorm", "erm", "cvar", "chi2", "kl", "group-dro", "topic-cvar", "pdro")},
}
N_SEEDS = 3
#: the one learning rate of both players under the authors' recipe at this scale (theirs: 2e-5 for
#: 50 epochs of a 300-unit BiLSTM); the other values are TrainConfig's defaults
AUTHORS_LR = 1e-3

NOT_SHOWN = (
    "The paper's per-method BiasedSST numbers (arXiv 2204.06340) are not shown beside ours. The paper reports that ratio DRO selected by "
    "the minmax rule is more robust than ERM and the non-parametric baselines on BiasedSST, with "
    "oracle Group DRO as the upper reference. The BiasedSST numbers of P-DRO's own paper (arXiv 2103.10282) are "
    "not shown either."
)


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _fmt(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def _run_protocol(name: str, data, seeds: list[int], scale: tuple, ckpt_root: Path, log,
                  only: tuple[str, ...] | None = None, model_size: str = "small",
                  tokens: str = "words") -> dict[str, Any]:
    """Train every method of protocol ``name`` (those in ``only`` when given; ratio always) for every
    seed; return the picks per method, rule and seed."""
    spec = PROTOCOLS[name]
    text_model, n_train, epochs = scale
    methods = [m for m in spec["methods"] if only is None or m in only or m == "ratio"]
    picks: dict[str, dict[str, list[dict]]] = {m: {} for m in methods}
    times: dict[str, float] = {}
    first_runs: dict[str, dict] = {}  # the first seed's ratio-DRO and P-DRO runs, for their weights
    valid_kl: dict[str, list[list[float]]] = {}  # the adversaries' validation KL per seed and epoch
    for seed in seeds:
        runs: dict[str, dict] = {}
        for method in methods:
            lr = AUTHORS_LR if spec["recipe"] == "authors" else TrainConfig.lr
            cfg = TrainConfig(method=method, seed=seed, epochs=epochs, n_train=n_train, text_model=text_model,
                              recipe=spec["recipe"], eta_q=spec["eta_q"], lr=lr, model_size=model_size,
                              tokens=tokens)
            t0 = time.perf_counter()
            runs[method] = result = train_on(data, cfg, ckpt_root / name / f"{method}-seed{seed}",
                                             base_lm_dir=ckpt_root / name / "pdro-base-lm")
            times[method] = result["seconds_per_step"]
            if method in ("ratio", "pdro") and seed == seeds[0]:
                first_runs[method] = result
            if "valid_kl" in result["history"][0]:
                valid_kl.setdefault(method, []).append([h["valid_kl"] for h in result["history"]])
            log(f"[dro] {name} {method} seed {seed}: " + ", ".join(
                f"{r} worst {v['test_worst']:.3f}" for r, v in result["selection"].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
        pool = runs["ratio"]["valid_ratios"]
        for method, result in runs.items():
            sel = dict(result["selection"])
            # the current protocol's minmax: every method against this seed's ratio-DRO adversaries
            sel["minmax"] = selected(result["history"], minmax_select(result["valid_errors"], pool)[0])
            for rule, pick in sel.items():
                picks[method].setdefault(rule, []).append(pick)
        if name == "authors" and "ratio-selfnorm" in runs:
            picks.setdefault("ratio (global minmax)", {}).setdefault(spec["rule"], []).append(
                _global_pick(runs, ("ratio", "ratio-selfnorm")))
    return {"picks": picks, "seconds_per_step": times, "ratio_run": first_runs["ratio"],
            "pdro_run": first_runs.get("pdro"), "valid_kl": valid_kl}


def _global_pick(runs: dict[str, dict], methods: tuple[str, ...]) -> dict[str, Any]:
    """The authors' cross-run step: each run's greedy pick competes under every run's adversaries."""
    errors, pool, chosen = [], [], []
    for m in methods:
        result = runs[m]
        index = result["selection"]["greedy-minmax"]["epoch"] - 1
        errors.append(result["valid_errors"][index])
        pool.append(torch.cat([torch.zeros(1, result["valid_errors"].shape[1]), result["valid_log_weights"]]))
        chosen.append(index)
    best, _ = global_minmax_select(torch.stack(errors), torch.cat(pool))
    return {**selected(runs[methods[best]]["history"], chosen[best]), "run": methods[best]}


def _summarise(picks: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {method: {rule: {"worst": _mean_std([p["test_worst"] for p in ps]), "acc": _mean_std([p["test_acc"] for p in ps]),
                            "worst_per_seed": [p["test_worst"] for p in ps], "epochs": [p["epoch"] for p in ps],
                            **({"runs": [p["run"] for p in ps]} if "run" in ps[0] else {})}
                     for rule, ps in by_rule.items()}
            for method, by_rule in picks.items()}


def run_reproduce(out: Path, quick: bool = True, seed: int = 0, log=print, epochs: int | None = None,
                  n_seeds: int = N_SEEDS, n_train: int | None = None, data_dir: str | Path | None = None,
                  methods: tuple[str, ...] | None = None, model_size: str = "small",
                  tokens: str = "words") -> dict[str, Any]:
    """Run both protocols; ``epochs`` / ``n_seeds`` / ``n_train`` override the scale, ``methods``
    restricts the methods (ratio DRO always runs: its adversaries are the current protocol's pool),
    ``model_size`` picks the BiLSTM's size (``"authors"``: 300-d embeddings, 300 units per direction,
    learned initial states, 128 tokens), ``tokens`` the inputs (``"wordpiece"``: word pieces learnt on
    the training split, see :mod:`quintet.dro.wordpiece`)."""
    from quintet.core.runs import Run
    from quintet.dro.plots import weights_figure, worst_group_figure
    from quintet.dro.tasks import load_task

    torch.set_num_threads(1)
    text_model, base_n, base_epochs = SCALES["quick" if quick else "full"]
    scale = (text_model, n_train or base_n, epochs or base_epochs)
    seeds = [seed + i for i in range(n_seeds)]
    config = {"quick": quick, "seeds": seeds, "text_model": scale[0], "n_train": scale[1], "epochs": scale[2],
              "model_size": model_size, **({} if tokens == "words" else {"tokens": tokens}),
              "protocols": PROTOCOLS, "authors_lr": AUTHORS_LR, "defaults": asdict(TrainConfig())}
    run = Run(out, config)
    start = time.perf_counter()
    data = load_task("biased-sst", data_dir, n_train=scale[1], text_model=scale[0], model_size=model_size,
                     tokens=tokens)
    data_notes = {"groups": data.group_names, **data.notes,
                  **{f"{s}_group_counts": getattr(data, s).group_counts(data.n_groups) for s in ("train", "valid", "test")}}
    results = {name: _run_protocol(name, data, seeds, scale, Path(out) / ".checkpoints", log, methods, model_size,
                                   tokens)
               for name in PROTOCOLS}
    summary = {name: _summarise(r["picks"]) for name, r in results.items()}
    metrics = {"summary": summary, "seconds_per_step": {n: r["seconds_per_step"] for n, r in results.items()},
               "valid_kl": {n: r["valid_kl"] for n, r in results.items()},
               "data": data_notes, "minutes": round((time.perf_counter() - start) / 60, 1),
               "ratio_weights_seed0": {n: r["ratio_run"]["weights"] for n, r in results.items()},
               "pdro_weights_seed0": {n: r["pdro_run"]["weights"] for n, r in results.items() if r["pdro_run"]},
               "pdro_adversary": {name: getattr(TrainConfig(), name) for name in PDRO_RANGES}}
    run.log_metrics(metrics)
    panels = {f"{n} protocol, ratio DRO": r["ratio_run"] for n, r in results.items()}
    panels.update({f"{n} protocol, P-DRO": r["pdro_run"] for n, r in results.items() if r["pdro_run"]})
    run.save_figure(weights_figure(panels), "dro_weights.png")
    bars = {f"{n} protocol": {m: v[PROTOCOLS[n]["rule"]] for m, v in summary[n].items()} for n in PROTOCOLS}
    run.save_figure(worst_group_figure(bars), "dro_worst_group.png")
    from quintet.dro.report import results_markdown

    run.finish(results_markdown(summary, metrics, scale, seeds, NOT_SHOWN))
    return metrics
