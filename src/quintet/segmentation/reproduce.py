"""``quintet reproduce segmentation``: does the memory help?  Unseen-domain mIoU on CamVid re-split
by sequence (sources 0006R0 + 0016E5, unseen targets 0001TP (dusk) and Seq05VD).

1. **Convergence study**: ERM trained on the source frames minus a held-out stretch (the first
   20 % of each source sequence) for a ladder of step budgets (poly schedule ending at each
   budget), scored on the held-out frames; the schedule used by every method is the first budget
   after which the next budget adds less than half a point of held-out mIoU (capped by the most
   steps the protocol affords, which the report states).
2. **Paired seeds** at that schedule on all source frames: ERM, MLDG, memory without
   meta-learning and Pin the Memory; Pin the Memory without each memory loss; MLDG, Pin the Memory
   and ERM with the first source's stronger meta augmentation of the authors' code; ERM and Pin
   the Memory with the authors' augmentation and learning-rate schedule; seed-0 read variants.
   Comparisons are paired by seed (mean, std, t, p) with the smallest gain the seeds resolve.
3. The memory-read diagnosis (entropy against its lowest possible value, cosine range, mIoU with
   the read forced uniform or zeroed) of the seed-0 models with memory.

Every run's result is kept in ``OUT/runs/`` with its configuration and reused; several processes
may share the work (see :mod:`quintet.segmentation.sweep`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from quintet.core.errors import QuintetError
from quintet.segmentation.experiments import TrainConfig
from quintet.segmentation.losses import LossWeights
from quintet.segmentation.models import NetConfig
from quintet.segmentation.report import (
    comparison,
    comparison_tables,
    confound_share,
    p_text,
    power_line,
    power_table,
    read_table,
    read_verdict,
    summary_rows,
    summary_table,
    unfinished_line,
    variant_lines,
)
from quintet.segmentation.sweep import Job, SweepData, cached, run_jobs, slug


@dataclass(frozen=True)
class Protocol:
    """How much is run: ERM step budgets and seeds of the convergence study, seeds per group of
    runs, whether the seed-0 read variants run, and the most steps a run may take."""

    budgets: tuple[int, ...]
    convergence_seeds: int
    main_seeds: int
    ablation_seeds: int
    confound_seeds: int
    schedule_seeds: int
    read_variants: bool
    max_steps: int
    tolerance: float = 0.005  # held-out mIoU the next budget must add to count as progress


PROTOCOLS = {
    True: Protocol(budgets=(150, 300), convergence_seeds=1, main_seeds=3, ablation_seeds=0, confound_seeds=0,
                   schedule_seeds=0, read_variants=False, max_steps=300),
    # ERM converges at 4800 steps (two seeds); every group there takes two CPU processes of one
    # thread each about twelve hours, so the sweep runs over several invocations, each resuming the
    # finished records and the checkpoint of an interrupted run
    False: Protocol(budgets=(150, 300, 600, 1200, 2400, 4800, 9600), convergence_seeds=2, main_seeds=8, ablation_seeds=5,
                    confound_seeds=3, schedule_seeds=3, read_variants=True, max_steps=4800),
}

# label -> (method, loss-weight overrides, other TrainConfig overrides)
MAIN: dict[str, tuple[str, dict, dict]] = {
    "ERM": ("erm", {}, {}),
    "MLDG": ("mldg", {}, {}),
    "Memory (no meta)": ("memory", {}, {}),
    "Pin the Memory": ("pinmem", {}, {}),
}
ABLATIONS = {
    "PinMem, no cohesion loss": ("pinmem", {"cohesion": 0.0}, {}),
    "PinMem, no divergence loss": ("pinmem", {"divergence": 0.0}, {}),
    "PinMem, no slot cls loss": ("pinmem", {"classification": 0.0}, {}),
}
META_AUG = {"first_source_meta_aug": True}
CONFOUND = {
    "MLDG + meta aug": ("mldg", {}, META_AUG),
    "Pin the Memory + meta aug": ("pinmem", {}, META_AUG),
    "ERM + meta aug": ("erm", {}, META_AUG),
}
AUTHORS_SCHEDULE = {"augmentation": "strong", "schedule": "exp", "lr": 0.01}
SCHEDULE = {
    "ERM, authors' aug + schedule": ("erm", {}, AUTHORS_SCHEDULE),
    "Pin the Memory, authors' aug + schedule": ("pinmem", {}, AUTHORS_SCHEDULE),
}
# seed-0 variants of Pin the Memory that could sharpen the read: label -> (net, loss overrides)
READ_VARIANTS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    "Gumbel-trained read (T = 1)": ({"gumbel_read": True}, {}),
    "read T = 0.1": ({"read_temperature": 0.1}, {}),
    "read + cohesion T = 0.1": ({"read_temperature": 0.1}, {"cohesion_temperature": 0.1}),
}

# (a, b) compared as a − b paired by seed
MAIN_COMPARISONS = (("Pin the Memory", "ERM"), ("MLDG", "ERM"), ("Memory (no meta)", "ERM"),
                    ("Pin the Memory", "MLDG"), ("Pin the Memory", "Memory (no meta)"))
ABLATION_COMPARISONS = tuple(("Pin the Memory", label) for label in ABLATIONS)
CONFOUND_COMPARISONS = (("Pin the Memory + meta aug", "ERM"), ("Pin the Memory + meta aug", "Pin the Memory"),
                        ("MLDG + meta aug", "ERM"), ("MLDG + meta aug", "MLDG"), ("ERM + meta aug", "ERM"),
                        ("Pin the Memory + meta aug", "ERM + meta aug"))
SCHEDULE_COMPARISONS = (("Pin the Memory, authors' aug + schedule", "ERM, authors' aug + schedule"),
                        ("ERM, authors' aug + schedule", "ERM"),
                        ("Pin the Memory, authors' aug + schedule", "Pin the Memory"))
# group key -> (heading, what the group compares), in the report's order
GROUP_TEXT = {
    "main": ("Main comparisons", "every method against ERM, and Pin the Memory against the runs that lack the "
             "memory (MLDG) or the meta-learning episode (Memory (no meta))"),
    "confound": ("The first source's meta augmentation",
                 "the authors' code gives the first source domain colour jitter (0.8, 0.8, 0.8, 0.3) + Gaussian blur "
                 "in its MLDG and Pin the Memory runs only (the ERM baseline trains without it); here each of the "
                 "three methods is also run with it"),
    "schedule": ("The authors' augmentation and schedule",
                 "random scale 0.5–2 crops, colour jitter (0.4, 0.4, 0.4, 0.1) with probability 0.5, Gaussian blur "
                 "and flips; lr 0.01 with exponential decay (×exp(−2.25) over the run)"),
    "ablations": ("Loss ablations", "Pin the Memory against itself without one memory loss"),
}
# group key -> (configurations, comparisons)
GROUPS = {"main": (MAIN, MAIN_COMPARISONS), "confound": (CONFOUND, CONFOUND_COMPARISONS),
          "schedule": (SCHEDULE, SCHEDULE_COMPARISONS), "ablations": (ABLATIONS, ABLATION_COMPARISONS)}
DIAGNOSED = ("Pin the Memory", "Memory (no meta)", "Pin the Memory, authors' aug + schedule")
FIGURE_MODELS = ("ERM", "Pin the Memory")

PAPER_CONTEXT = (
    "For context, the paper trains DeepLabV3+ ResNet-50 (ImageNet initialisation) on GTAV + SYNTHIA "
    "and reports Pin the Memory above the plain baseline on all three unseen real-city data sets "
    "(Cityscapes, BDD100K, Mapillary; arXiv 2204.03609, Table 1). Its numbers are not shown here: "
    "its setting (data, network, schedule) is not the one run here."
)


def converged_steps(budgets: tuple[int, ...], heldout: list[float], tolerance: float) -> tuple[int, bool]:
    """The first budget after which the next one adds less than ``tolerance`` held-out mIoU, and
    whether one was found (otherwise the largest budget)."""
    for i in range(len(budgets) - 1):
        if heldout[i + 1] - heldout[i] < tolerance:
            return budgets[i], True
    return budgets[-1], False


def compare(per_run: dict[str, list[dict]], pairs: tuple[tuple[str, str], ...],
            targets: list[str]) -> dict[str, dict[str, Any]]:
    """Paired comparison ``a − b`` of each pair over the seeds both have (when at least 2)."""
    res = {}
    for a, b in pairs:
        n = min(len(per_run.get(a, [])), len(per_run.get(b, [])))
        if n >= 2:
            res[f"{a} − {b}"] = comparison(per_run[a][:n], per_run[b][:n], targets)
    return res


def shorter_schedules(cache: Path, steps: int, group_seeds: dict[str, list[int]], first_seed: int,
                      targets: list[str]) -> dict[int, dict[str, dict[str, dict[str, Any]]]]:
    """The comparisons of every shorter schedule whose records lie in ``cache/<n>-steps``, by group
    (``group_seeds``: group key of :data:`GROUPS` -> seeds); finished runs only, each
    configuration up to its first missing seed; nothing is trained."""
    out = {}
    schedules = sorted((int(f.name.split("-")[0]), f) for f in cache.glob("*-steps"))
    for n_steps, folder in schedules:
        if n_steps >= steps:
            continue
        per_run = {}
        for key, (group, _) in GROUPS.items():
            for label, jobs in _group_jobs(folder, group, group_seeds.get(key, []), n_steps, first_seed).items():
                per_run[label] = leading([cached(replace(job, keep_model=False)) for job in jobs])  # records alone
        found = {key: c for key, (_, pairs) in GROUPS.items() if (c := compare(per_run, pairs, targets))}
        if found:
            out[n_steps] = found
    return out


def leading(records: list[dict | None]) -> list[dict]:
    """The finished records before the first missing one (seeds stay paired across methods)."""
    return records[:records.index(None)] if None in records else records


def finished(jobs: list[Job], data: SweepData) -> list[dict[str, Any] | None]:
    """The stored result of each job, None where it has not finished; nothing is trained."""
    return [cached(job) for job in jobs]


def _cfg(method: str, seed: int, steps: int, losses: dict | None = None, net: dict | None = None,
         **overrides: Any) -> TrainConfig:
    return TrainConfig(method=method, seed=seed, steps=steps, checkpoint_every=10**9,
                       losses=LossWeights(**(losses or {})).to_dict(),
                       net=NetConfig.tiny(**(net or {})).to_dict(), **overrides)


def _group_jobs(cache: Path, group: dict[str, tuple[str, dict, dict]], seeds: list[int], steps: int,
                first_seed: int) -> dict[str, list[Job]]:
    out: dict[str, list[Job]] = {label: [] for label in group}
    for s in seeds:
        for label, (method, losses, over) in group.items():
            seed0 = s == first_seed
            out[label].append(Job(f"{label} seed {s}", cache / f"{slug(label)}-seed{s}.json",
                                  _cfg(method, s, steps, losses, **over),
                                  keep_model=seed0 and label in FIGURE_MODELS, diagnose=seed0 and label in DIAGNOSED))
    return out


def run_reproduce(out: Path, quick: bool, seed: int, finished_only: bool = False) -> dict[str, Any]:
    """Run (or resume) the protocol and write the report; with ``finished_only`` nothing is trained
    and the report covers the runs that have finished, each group up to its first missing seed."""
    import torch

    from quintet.core.runs import Run, markdown_table
    from quintet.datasets import CAMVID_CLASSES
    from quintet.segmentation.data import CAMVID_SOURCES, CAMVID_TARGETS, camvid_domains
    from quintet.segmentation.experiments import load_model

    torch.set_num_threads(1)
    proto = PROTOCOLS[quick]
    t0 = time.perf_counter()
    domains = camvid_domains()
    data = SweepData([domains[s] for s in CAMVID_SOURCES], [domains[t] for t in CAMVID_TARGETS])
    cache = out / "runs"
    targets = list(CAMVID_TARGETS)

    # 1. convergence study (ERM, held-out source frames); budgets beyond max_steps only matter for
    # the report once the budgets up to it have not converged, so they run after the main seeds
    conv_seeds = [seed + i for i in range(proto.convergence_seeds)]
    conv_jobs = [Job(f"ERM {b} steps (held out) seed {s}", cache / f"convergence-erm-{b}-seed{s}.json",
                     _cfg("erm", s, b), holdout=True) for s in conv_seeds for b in proto.budgets]
    within = [b for b in proto.budgets if b <= proto.max_steps]
    within_jobs = [j for j in conv_jobs if j.cfg.steps in within]
    execute = finished if finished_only else run_jobs
    first = dict(zip([j.record for j in within_jobs], execute(within_jobs, data)))
    if None in first.values():
        raise QuintetError("the convergence study has not finished: run without --finished-only first")
    early = np.array([[first[j.record]["heldout"] for j in within_jobs[i * len(within):(i + 1) * len(within)]]
                      for i in range(len(conv_seeds))]).mean(0).tolist()
    found_early, converged_early = converged_steps(tuple(within), early, proto.tolerance)
    steps = found_early if converged_early else proto.max_steps
    late = [] if converged_early else [j for j in conv_jobs if j.cfg.steps not in within]

    # 2. paired seeds at that schedule
    def seeds(n: int) -> list[int]:
        return [seed + i for i in range(n)]

    # groups in order of priority, each seed by seed; records of each schedule in a folder of their own
    at_steps = cache / f"{steps}-steps"
    group_seeds = {"main": seeds(proto.main_seeds), "ablations": seeds(proto.ablation_seeds),
                   "confound": seeds(proto.confound_seeds), "schedule": seeds(proto.schedule_seeds)}
    planned = [_group_jobs(at_steps, GROUPS[key][0], group_seeds[key], steps, seed) for key in group_seeds]
    groups = {label: jobs for group in planned for label, jobs in group.items()}
    variant_jobs = {label: Job(f"variant {label}", at_steps / f"variant-{slug(label)}-seed{seed}.json",
                               _cfg("pinmem", seed, steps, loss_over, net_over), diagnose=True)
                    for label, (net_over, loss_over) in READ_VARIANTS.items()} if proto.read_variants else {}
    ordered = [jobs[i] for group in planned for i in range(max(map(len, group.values())))
               for jobs in group.values() if i < len(jobs)]
    n_main = sum(len(jobs) for jobs in planned[0].values())
    ordered = ordered[:n_main] + late + ordered[n_main:] + list(variant_jobs.values())
    done = dict(zip([j.record for j in ordered], execute(ordered, data)))
    if any(done[j.record] is None for j in late):
        raise QuintetError("the convergence study has not finished: run without --finished-only first")
    budgets = tuple(within) + tuple(sorted({j.cfg.steps for j in late}))
    conv = [first.get(j.record) or done[j.record] for j in conv_jobs if j.cfg.steps in budgets]
    grid = {key: np.array([[r[key] if key != "avg" else np.mean([r[t] for t in targets]) for r in
                            conv[i * len(budgets):(i + 1) * len(budgets)]]
                           for i in range(len(conv_seeds))]) for key in ("heldout", "avg")}
    found_steps, converged = converged_steps(budgets, grid["heldout"].mean(0).tolist(), proto.tolerance)
    per_run = {label: leading([done[j.record] for j in jobs]) for label, jobs in groups.items()}
    if len(per_run["Pin the Memory"]) < 2 or len(per_run["ERM"]) < 2:
        raise QuintetError("fewer than 2 paired seeds of ERM and Pin the Memory have finished")
    missing = {label: (len(per_run[label]), len(jobs)) for label, jobs in groups.items()
               if len(per_run[label]) < len(jobs)}
    missing |= {f"variant {label}": (0, 1) for label, j in variant_jobs.items() if done[j.record] is None}
    variants = {label: done[j.record] for label, j in variant_jobs.items() if done[j.record] is not None}

    comparisons = {key: compare(per_run, pairs, targets) for key, (_, pairs) in GROUPS.items()}
    shorter = shorter_schedules(cache, steps, group_seeds, seed, targets)
    rows = summary_rows(per_run, targets)
    main = comparisons["main"]["Pin the Memory − ERM"]
    diagnosis = {f"{label} (seed {seed})": per_run[label][0]["read_diagnosis"]
                 for label in DIAGNOSED if per_run[label]}
    diagnosis |= {f"PinMem, {label} (seed {seed})": r["read_diagnosis"] for label, r in variants.items()}

    per_class = []
    for t in targets:
        for label in FIGURE_MODELS:
            ious = np.array([[np.nan if v is None else v for v in r[f"{t}_iou"]] for r in per_run[label]])
            per_class.append({"target": t, "method": label,
                              **{c: 100 * float(np.nanmean(ious[:, i])) if np.isfinite(ious[:, i]).any()
                                 else float("nan") for i, c in enumerate(CAMVID_CLASSES)}})

    config = {"quick": quick, "protocol": proto.__dict__ | {"budgets": list(proto.budgets)}, "steps": steps,
              "sources": CAMVID_SOURCES, "targets": CAMVID_TARGETS, "image_size": "120x90",
              "net": "tiny DeepLabV3+ (widths 16-32-48-64)", "batch_per_domain": 4}
    run = Run(out, config)
    models = {label: load_model(job.model_dir)[0] for label, jobs in groups.items() for job in jobs[:1]
              if label in FIGURE_MODELS}
    _figures(run, domains, models, rows, budgets, grid, steps)

    trained = [*conv, *(r for results in per_run.values() for r in results), *variants.values()]
    training = (len(trained), sum(r["seconds"] for r in trained) / 3600)
    md = _markdown(proto, budgets, quick, seed, steps, found_steps, converged, conv_seeds, grid, rows, comparisons, main,
                   diagnosis, variants, per_run, per_class, targets, (time.perf_counter() - t0) / 60, training,
                   markdown_table, shorter, missing)
    metrics = {"convergence": {"budgets": list(budgets), "seeds": conv_seeds,
                               "heldout": grid["heldout"].tolist(), "targets_avg": grid["avg"].tolist(),
                               "found_steps": found_steps, "converged": converged, "steps_used": steps},
               "rows": rows, "comparisons": comparisons, "per_run": per_run, "per_class": per_class,
               "shorter_schedules": {str(n): found for n, found in shorter.items()},
               "read_diagnosis": diagnosis, "read_variants": variants, "paper": PAPER_CONTEXT,
               "unfinished": {label: {"finished": n, "planned": m} for label, (n, m) in missing.items()},
               "verdict": {"pinmem_minus_erm_avg": main["stats"]["mean"]["mean"],
                           "p": main["stats"]["mean"]["p"], "n_seeds": main["stats"]["mean"]["n"]}}
    run.log_metrics(metrics)
    run.finish(md)
    return metrics


def _figures(run: Any, domains: dict, models: dict, rows: list[dict], budgets: tuple[int, ...],
             grid: dict[str, np.ndarray], steps: int) -> None:
    from quintet.datasets import CAMVID_CLASSES
    from quintet.segmentation.data import CAMVID_TARGETS
    from quintet.segmentation.experiments import predict
    from quintet.segmentation.plots import (
        attention_maps,
        convergence_plot,
        miou_bars,
        prediction_grid,
    )

    show = 3
    imgs, truth, titles, preds = [], [], [], {k: [] for k in models}
    for t in CAMVID_TARGETS:
        d = domains[t]
        idx = np.linspace(0, len(d) - 1, show).astype(int)
        imgs.append(d.images[idx])
        truth.append(d.labels[idx])
        titles += [f"{t} {d.names[i][-10:]}" for i in idx]
        for k in preds:
            preds[k].append(predict(models[k], d.images[idx]))
    run.save_figure(prediction_grid(np.concatenate(imgs), np.concatenate(truth),
                                    {k: np.concatenate(v) for k, v in preds.items()}, titles, CAMVID_CLASSES),
                    "segmentation_predictions.png")
    for name, frame in (("0001TP", 60), ("Seq05VD", 85)):
        d = domains[name]
        frame = min(frame, len(d) - 1)
        _, att = predict(models["Pin the Memory"], d.images[frame:frame + 1], return_attention=True)
        run.save_figure(attention_maps(d.images[frame], att[0], CAMVID_CLASSES), f"segmentation_attention_{name}.png")
    run.save_figure(miou_bars(rows, list(CAMVID_TARGETS) + ["avg"]), "segmentation_miou.png")
    run.save_figure(convergence_plot(budgets, {"held-out source frames": grid["heldout"],
                                               "unseen targets (mean)": grid["avg"]}, steps),
                    "segmentation_convergence.png")


def _seed_range(found: dict[str, dict[str, Any]]) -> str:
    counts = sorted({c["stats"]["mean"]["n"] for c in found.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _markdown(proto: Protocol, budgets: tuple[int, ...], quick: bool, seed: int, steps: int, found_steps: int, converged: bool,
              conv_seeds: list[int], grid: dict[str, np.ndarray], rows: list[dict],
              comparisons: dict[str, dict[str, Any]], main: dict[str, Any], diagnosis: dict[str, Any],
              variants: dict[str, Any], per_run: dict[str, list[dict]], per_class: list[dict],
              targets: list[str], minutes: float, training: tuple[int, float], markdown_table: Any,
              shorter: dict[int, dict[str, dict[str, Any]]], missing: dict[str, tuple[int, int]]) -> str:
    from quintet.segmentation.report import _signed, _signed_t

    conv_rows = [{"steps": b, "held-out source mIoU": f"{100 * grid['heldout'][:, i].mean():.1f}",
                  **{f"seed {s}": f"{100 * grid['heldout'][j, i]:.1f}" for j, s in enumerate(conv_seeds)},
                  "unseen targets (mean)": f"{100 * grid['avg'][:, i].mean():.1f}"}
                 for i, b in enumerate(budgets)]
    if converged:
        conv_text = (f"Going beyond **{found_steps}** steps to the next budget adds less than "
                     f"{100 * proto.tolerance:.1f} points of held-out mIoU")
    else:
        conv_text = (f"Held-out mIoU still rises by at least {100 * proto.tolerance:.1f} points from each budget to the "
                     f"next, up to {budgets[-1]} steps: ERM has **not converged** within the budgets run")
    cap = (f"; every method below runs **{steps} steps**, the most this protocol affords on one CPU thread"
           if steps < found_steps else f"; every method below runs **{steps} steps**")
    pm = main["stats"]["mean"]
    by_n = {label: len(r) for label, r in per_run.items() if r}
    sections = [f"""# segmentation — does the memory help? Pin the Memory on unseen CamVid domains

CamVid (120×90, 11 classes, void ignored) re-split by sequence: sources **0006R0 + 0016E5** (406 frames),
unseen targets **0001TP** (dusk, 124 frames) and **Seq05VD** (171 frames). Tiny DeepLabV3+ (widths
16-32-48-64, 0.36 M parameters) trained from scratch (no ImageNet weights), 4 frames per source
domain per step, SGD lr 0.05 with poly decay unless stated; mIoU in %.
{'**Quick scale** (`--quick`): a smoke-sized version of the protocol.' if quick else ''}

## 1. How many steps? ERM on held-out source frames

ERM trained on the source frames without their first 20 % (one contiguous stretch of each drive),
scored on those held-out frames, for each step budget (the poly schedule ends at the budget),
seeds {conv_seeds}:

{markdown_table(conv_rows)}
{conv_text}{cap}.

![convergence](segmentation_convergence.png)

## 2. Paired seeds at {steps} steps

{summary_table(rows, targets)}
**Pin the Memory − ERM**, mean over both targets: **{_signed(100 * pm['mean'])} points** over {pm['n']} seeds
(std of the per-seed differences {100 * pm['std']:.1f}, paired t = {_signed_t(pm['t'])} with {pm['df']} degrees
of freedom, two-sided p {p_text(pm['p'], equals=True)}; ahead in {pm['wins']} of {pm['n']} seeds). Power: {power_line(pm)}.
"""]
    for key, (title, text) in GROUP_TEXT.items():
        if not comparisons[key]:
            continue
        per_seed, summary = comparison_tables(comparisons[key], targets)
        sections.append(f"""### {title}

{text[0].upper() + text[1:]}. Per-seed differences (mIoU points, mean of both targets):

{per_seed}
Summary: mean difference per target (paired t), then on the mean of both targets the mean
difference, the std of the per-seed differences, t = mean / (std / √n), the two-sided p-value and
the seeds where the first is ahead:

{summary}
Smallest differences these seeds resolve (from the observed paired std; p < 0.05 two-sided; the
true difference detected with 80 % power):

{power_table(comparisons[key])}""")
        if key == "confound" and "Pin the Memory + meta aug − Pin the Memory" in comparisons[key]:
            sections.append(confound_share(comparisons[key], "Pin the Memory + meta aug", "Pin the Memory") + " "
                            + confound_share(comparisons[key], "MLDG + meta aug", "MLDG") + "\n")

    for n_steps, by_group in shorter.items():
        tables = "\n".join(f"**{GROUP_TEXT[key][0]}** ({_seed_range(found)} paired seeds):\n\n"
                           f"{comparison_tables(found, targets)[1]}" for key, found in by_group.items())
        sections.append(f"""### The comparisons after the shorter {n_steps}-step schedule

The same comparisons from the records of {n_steps}-step runs, to show how the differences depend on
the length of training:

{tables}""")

    init = {r["method"]: r["init_slot_cosine"] for r in rows if "init_slot_cosine" in r}
    init_text = ", ".join(f"{label} {v:.2f}" for label, v in init.items())
    base = next(iter(diagnosis.values()))
    sections.append(f"""## 3. Does the memory read guide the prediction?

For each seed-{seed} model with memory, over all target pixels: the range of the query–slot cosines,
their per-pixel standard deviation over the 11 slots ("spread"), the entropy of the read as a share
of ln 11 = {math.log(11):.3f} next to the lowest share any read at the model's temperature can reach
(every cosine lies in [0, 1]: queries follow a ReLU and slots are normalised means of ReLU outputs),
the mean largest attention weight next to its largest possible value ({base['bound_max_attention']:.3f} at
T = 1; uniform 1/11 = {1 / 11:.3f}), and mIoU with the read as trained, forced uniform and with a zero
read-out.

{read_table(diagnosis, targets)}
{read_verdict(base, targets)}

{variant_lines(variants, per_run['Pin the Memory'][0], targets) + chr(10) if variants else ''}
The slots start from class means of the randomly initialised network's features: mean cosine
between distinct initial slots (mean over seeds) {init_text}.

Per-class IoU (%, mean over seeds) of ERM and Pin the Memory on each unseen domain:

{markdown_table([{k: (f"{v:.1f}" if isinstance(v, float) else v) for k, v in r.items()} for r in per_class])}
{PAPER_CONTEXT} The scales differ by orders of magnitude (two real source sequences instead of two
synthetic data sets, a 0.36 M-parameter network trained from scratch for {steps} steps), so only
the direction of an effect is comparable, not the values.

![mIoU](segmentation_miou.png)

![predictions on unseen domains](segmentation_predictions.png)

![memory attention, 0001TP](segmentation_attention_0001TP.png)

![memory attention, Seq05VD](segmentation_attention_Seq05VD.png)

Seeds per configuration: {', '.join(f'{k} {v}' for k, v in by_n.items())}. The {training[0]} training runs
behind this report took {training[1]:.1f} hours in all (one CPU thread each, timed as they ran); this
invocation took {minutes:.1f} min, since each run's record is kept in `runs/` with its configuration and
reused when that matches.
{unfinished_line(missing)}""")
    return "\n".join(sections)
