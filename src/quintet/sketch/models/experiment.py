"""The Vitruvion experiment at the scale of this machine: train the primitive, constraint and
image-conditioned models on the procedural corpus, then measure (paper §4)

* bits per primitive / per sketch on held-out procedural sketches and on the real SketchGraphs
  sketches that pass the filter (never trained on), beside the uniform and LZMA baselines;
* the constraint model's accuracy (teacher-forced, on noisy primitives) and the precision/recall
  of its greedy constraint sets;
* image-to-primitive accuracy on hand-drawn renderings of held-out sketches;
* of sampled sketches: the fraction that parse, that SolveSpace solves, and that are fully
  constrained after constraint inference; PNG grids of samples, primer completions and
  image-to-sketch results.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from quintet.core.errors import QuintetError


@dataclass
class ModelsExperimentConfig:
    """Scale of the models experiment. :meth:`key` (every field but the ``image_*`` ones) names the
    checkpoint folder of the primitive and constraint models, so a rerun with the same
    configuration resumes and a changed one starts afresh; :meth:`image_key` (all fields) names the
    image model's, so changing only the image model's recipe retrains only the image model."""

    quick: bool = True
    seed: int = 0
    n_train: int = 4000
    n_test: int = 300
    max_primitives: int = 16
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    prim_steps: int = 3000
    cons_steps: int = 2000
    n_samples: int = 64
    top_p: float = 0.9
    noise_std: float = 0.15
    image_steps: int = 2000
    image_lr: float = 1e-3
    image_warmup: int = 100
    image_layers: int = 2
    #: "primitive": start the image model's decoder from the trained primitive model (two stages,
    #: see :func:`quintet.sketch.models.primitive.init_from_unconditional`); "scratch": from random.
    image_init: str = "primitive"

    @classmethod
    def for_scale(cls, quick: bool, seed: int) -> "ModelsExperimentConfig":
        if quick:  # ~10 min on 2 shared CPU cores, one torch thread
            return cls(quick=True, seed=seed, n_train=2000, n_test=100, batch_size=16, prim_steps=400,
                       cons_steps=300, n_samples=32, image_steps=IMAGE_STEPS_QUICK, image_warmup=IMAGE_WARMUP_QUICK)
        return cls(quick=False, seed=seed)

    def _digest(self, fields: dict) -> str:
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]

    def key(self) -> str:
        """``quick-seed0-<8 hex digits of the configuration without the image_* fields>``."""
        base = {k: v for k, v in asdict(self).items() if not k.startswith("image_")}
        return f"{'quick' if self.quick else 'full'}-seed{self.seed}-{self._digest(base)}"

    def image_key(self) -> str:
        """8 hex digits of the whole configuration (the image model starts from the primitive model)."""
        return self._digest(asdict(self))


IMAGE_STEPS_QUICK = 400
IMAGE_WARMUP_QUICK = 50


def image_checkpoint_dir(checkpoints: Path, image_key: str) -> Path:
    """``checkpoints/image`` holding the image model of configuration ``image_key``.

    The folder keeps the name ``image`` (what ``quintet sketch generate --models`` reads); its
    ``IMAGE_KEY`` file names the configuration. A folder of another configuration is moved aside
    to ``image-<its key>`` (and moved back should that configuration return), so a changed image
    recipe trains afresh while the primitive and constraint models are reused.
    """
    folder = Path(checkpoints) / "image"
    marker = folder / "IMAGE_KEY"
    current = marker.read_text().strip() if marker.is_file() else ("unkeyed" if folder.exists() else None)
    if current != image_key:
        if current is not None:
            aside = folder.with_name(f"image-{current}")
            if aside.exists():
                import shutil

                shutil.rmtree(aside)
            folder.rename(aside)
        kept = folder.with_name(f"image-{image_key}")
        if kept.exists():
            kept.rename(folder)
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(image_key + "\n")
    return folder


# ---- data ------------------------------------------------------------------------------------


def procedural_sketches(n: int, seed: int, max_primitives: int = 16) -> list:
    """``n`` sketches of the procedural corpus (:func:`quintet.sketch.synth.generate_sketches`)
    with at most ``max_primitives`` primitives."""
    from quintet.sketch.synth import generate_sketches

    out = [s for s in generate_sketches(n, seed=seed) if 0 < len(s.primitives) <= max_primitives]
    k = 1
    while len(out) < n:
        out += [s for s in generate_sketches(n - len(out), seed=seed + 7919 * k) if 0 < len(s.primitives) <= max_primitives]
        k += 1
    return out[:n]


def real_sketches(max_primitives: int = 16) -> list:
    """The SketchGraphs sample's sketches that pass Vitruvion's filter
    (:func:`quintet.sketch.io.sketchgraphs.vitruvion_filter`); ``[]`` without the data root."""
    from quintet.sketch.io.sketchgraphs import read_sketchgraphs, vitruvion_filter

    try:
        return [p.sketch for p in read_sketchgraphs() if vitruvion_filter(p, max_primitives=max_primitives).passed]
    except (QuintetError, FileNotFoundError):
        return []


def tokenize_all(sketches: list) -> tuple[list[list[int]], list[list[int]]]:
    from quintet.sketch.models.data import sketch_to_tokens

    pvals, cvals = [], []
    for s in sketches:
        try:
            p, c = sketch_to_tokens(s)
        except QuintetError:
            continue
        pvals.append(p)
        cvals.append(c)
    return pvals, cvals


def render_batch(pvals: list[list[int]], seed: int, augment: bool = True) -> torch.Tensor:
    """Hand-drawn renderings (N, 1, 128, 128) float in [0, 1] of token sequences, by the paper's
    renderer (:func:`quintet.sketch.io.render.render_hand_drawn`: Matérn-3/2 GP stroke noise,
    359° circles, jittered points; with the affine augmentation when ``augment``)."""
    from quintet.sketch.io.render import render_hand_drawn
    from quintet.sketch.tokens import decode_sketch

    rng = np.random.default_rng(seed)
    imgs = [render_hand_drawn(decode_sketch((p, None)), rng, augment=augment) for p in pvals]
    return torch.from_numpy(np.stack(imgs))[:, None]


# ---- solving ---------------------------------------------------------------------------------


def solve_outcome(sketch, timeout: float = 20.0) -> tuple[str, int, object]:
    """``(status, degrees of freedom left, solved sketch or None)`` with SolveSpace
    (:func:`quintet.sketch.solve.solve`, run in a worker process); status ``ok``, ``inconsistent``,
    ``didnt_converge``, ``too_many_unknowns`` or ``error``."""
    from quintet.sketch.solve import solve

    try:
        result = solve(sketch, timeout=timeout)
    except QuintetError:
        return "error", -1, None
    return result.status, int(result.dof), result.sketch


def solve_sketch(sketch, timeout: float = 20.0) -> tuple[bool, int, object]:
    """``(solved, degrees of freedom left, solved sketch or None)`` (see :func:`solve_outcome`)."""
    status, dof, solved = solve_outcome(sketch, timeout)
    return status == "ok", dof, solved


#: Size (normalised frame: the sketch's long side is 1) below which a solved primitive counts as
#: collapsed: a line this short, a circle this small, an arc whose ends are this close.
COLLAPSE_TOLERANCE = 1e-6


def collapsed_primitives(sketch, tol: float = COLLAPSE_TOLERANCE) -> int:
    """How many primitives of a (solved) sketch collapsed: lines shorter than ``tol``, circles of
    radius below it, arcs whose ends lie within it or whose points turned collinear. SolveSpace
    meets a constraint set that pins both ends of a line to one point by shrinking the line, so a
    solve can succeed with degenerate geometry."""
    n = 0
    for p in sketch.primitives:
        if p.type == "line":
            n += p.length <= tol
        elif p.type == "circle":
            n += p.r <= tol
        elif p.type == "arc":
            n += p.is_degenerate or math.hypot(p.ex - p.sx, p.ey - p.sy) <= tol
    return n


def solve_status(sketch) -> tuple[bool, bool]:
    """``(solved, fully constrained)`` of a sketch."""
    ok, dof, _ = solve_sketch(sketch)
    return ok, bool(ok and dof == 0)


# ---- figures ---------------------------------------------------------------------------------


def draw_sketch(ax, sketch, color: str = "k", lw: float = 1.2) -> None:
    """Draw primitives on a matplotlib axis (construction geometry dashed)."""
    from matplotlib.patches import Arc as ArcPatch
    from matplotlib.patches import Circle as CirclePatch

    for p in sketch.primitives:
        ls = "--" if p.construction else "-"
        c = "tab:blue" if p.construction else color
        if p.type == "line":
            ax.plot([p.x0, p.x1], [p.y0, p.y1], ls, color=c, lw=lw)
        elif p.type == "circle":
            ax.add_patch(CirclePatch(p.center, p.r, fill=False, ls=ls, color=c, lw=lw))
        elif p.type == "arc":
            if p.is_degenerate:
                ax.plot([p.sx, p.ex], [p.sy, p.ey], ls, color=c, lw=lw)
            else:
                a0, a1 = p.angles
                ax.add_patch(ArcPatch(p.center, 2 * p.radius, 2 * p.radius, theta1=math.degrees(a0),
                                      theta2=math.degrees(a1), ls=ls, color=c, lw=lw))
        else:
            ax.plot([p.x], [p.y], "o", color=c, ms=2)
    ax.set_xlim(-0.6, 0.6)
    ax.set_ylim(-0.6, 0.6)
    ax.set_aspect("equal")
    ax.axis("off")


def grid_figure(panels: list[list], titles: list[str] | None = None, images: list[np.ndarray | None] | None = None):
    """A grid: each row a list of sketches (or ``np.ndarray`` images)."""
    from quintet.core.plotting import plt

    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for i, row in enumerate(panels):
        for j in range(cols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(row) or row[j] is None:
                continue
            item = row[j]
            if isinstance(item, np.ndarray):
                ax.imshow(255 - item, cmap="gray", vmin=0, vmax=255)
            else:
                draw_sketch(ax, item)
        if titles:
            axes[i][0].set_title(titles[i], fontsize=7, loc="left")
    fig.tight_layout()
    return fig


# ---- the experiment --------------------------------------------------------------------------


def _safe_sketch(pval, cons=None):
    from quintet.sketch.models.data import constraint_tokens, tokens_to_sketch

    try:
        return tokens_to_sketch(pval, constraint_tokens(cons) if cons is not None else None)
    except QuintetError:
        return None


def _safe_sketch_tokens(pval, cval):
    from quintet.sketch.models.data import tokens_to_sketch

    try:
        return tokens_to_sketch(pval, cval)
    except QuintetError:
        return None


def constraint_set_scores(pred: list[tuple[int, list[int]]], true_tokens: list[int]) -> tuple[int, int, int]:
    """(true positives, predicted, true) between predicted constraints and the true token sequence."""
    from quintet.sketch.models.grammar import ConstraintGrammar

    truth = {(k, tuple(sorted(r))) for k, r in ConstraintGrammar().decode(true_tokens)}
    guess = {(k, tuple(sorted(r))) for k, r in pred}
    return len(truth & guess), len(guess), len(truth)


def set_scores(inferred: list[list[tuple[int, list[int]]]], true_tokens: list[list[int]]) -> dict[str, float]:
    """Greedy precision and recall of inferred constraint sets against the true token sequences."""
    tp = npred = ntrue = 0
    for pred, true in zip(inferred, true_tokens):
        a, b, c = constraint_set_scores(pred, true)
        tp, npred, ntrue = tp + a, npred + b, ntrue + c
    return {"greedy_precision": tp / max(npred, 1), "greedy_recall": tp / max(ntrue, 1)}


def bits_measures(model, seqs: list[list[int]]) -> dict:
    """Bits of ``seqs`` under ``model`` (grammar-masked and over the whole vocabulary) beside the
    uniform (grammar-aware and whole-vocabulary) and LZMA baselines."""
    from quintet.sketch.models.metrics import lzma_bits, model_bits, uniform_bits

    g = model.grammar
    return {"model": model_bits(model, seqs), "model_unmasked": model_bits(model, seqs, masked=False),
            "uniform_grammar": uniform_bits(seqs, g), "uniform_vocab": uniform_bits(seqs, g, grammar_aware=False),
            "lzma": lzma_bits(seqs, g), "n_sketches": len(seqs)}


def bits_row(name: str, b: dict) -> list:
    """One row of the bits table (see :data:`BITS_HEADER`)."""
    return [name, b["n_sketches"], b["model"]["bits_per_primitive"], b["model_unmasked"]["bits_per_primitive"],
            b["uniform_grammar"]["bits_per_primitive"], b["uniform_vocab"]["bits_per_primitive"],
            b["lzma"]["bits_per_primitive"], b["model"]["bits_per_sketch"], b["lzma"]["bits_per_sketch"]]


BITS_HEADER = ["held-out set", "sketches", "model bits/prim (grammar-masked)", "model bits/prim (unmasked)",
               "uniform (grammar) bits/prim", "uniform (vocab) bits/prim", "LZMA bits/prim", "model bits/sketch",
               "LZMA bits/sketch"]


def image_recall(model, pvals: list[list[int]], images: torch.Tensor, max_len: int) -> tuple[list, dict]:
    """Greedy decoding of ``images`` and its primitive recall / precision against ``pvals`` (type
    equal, every bin within 2)."""
    from quintet.sketch.models.metrics import match_primitives
    from quintet.sketch.models.sample import sample_primitives

    g = model.grammar
    greedy = sample_primitives(model, len(pvals), image=images, top_p=None, max_len=max_len)
    hits = ntrue = npred = exact = 0
    for pred, true in zip(greedy, pvals):
        pp, tt = g.decode(pred), g.decode(true)
        h = match_primitives(pp, tt)
        hits, ntrue, npred = hits + h, ntrue + len(tt), npred + len(pp)
        exact += int(h == len(tt) == len(pp))
    return greedy, {"primitive_recall_2bins": hits / max(ntrue, 1), "primitive_precision_2bins": hits / max(npred, 1),
                    "sketch_exact_2bins": exact / max(len(pvals), 1)}


def _drop_degenerate(seq: list[int], grammar) -> tuple[list[int], list[str]]:
    """``seq`` without its degenerate primitives (zero-length lines, zero-radius circles, arcs
    through collinear points) and the type names of those dropped; unchanged when it does not decode."""
    try:
        prims = grammar.decode(seq)
    except QuintetError:
        return seq, []
    valid = [_safe_sketch(grammar.encode([p])) is not None for p in prims]
    dropped = [grammar.type_names[p[0]] for p, ok in zip(prims, valid) if not ok]
    return grammar.encode([p for p, ok in zip(prims, valid) if ok]), dropped


def sample_and_solve(prim, cons, n: int, top_p: float, max_len: int, seed: int,
                     drop_degenerate: bool = False, valid_geometry: bool = True,
                     tolerance: float | None = None, residual_mask: bool = False) -> tuple[dict, list]:
    """Sample ``n`` sketches (nucleus ``top_p``), infer their constraints, solve them; returns the
    sample statistics and the parsed sketches with their constraints.

    ``valid_geometry``: sample under the validity mask (:mod:`quintet.sketch.models.validity`).
    The degenerate primitives of the samples as drawn are counted either way (per sample and by
    type); ``drop_degenerate`` removes them before parsing (a repair after the fact).
    ``tolerance``: drop the inferred constraints the sampled geometry misses by more than this
    share of its long side before solving (:func:`quintet.sketch.models.residual_check.drop_unmet`).
    ``residual_mask``: also decode the constraints under the
    :class:`~quintet.sketch.models.residual_check.ResidualMask` of that tolerance, so the model
    replaces such constraints by ones the geometry meets instead of losing them.
    """
    from quintet.sketch.models.residual_check import drop_unmet, relative_residuals
    from quintet.sketch.models.sample import (
        dedupe_constraints,
        infer_constraints,
        sample_primitives,
    )

    if residual_mask and tolerance is None:
        raise QuintetError("the residual mask needs a tolerance")
    g = prim.grammar
    samples = sample_primitives(prim, n, top_p=top_p, max_len=max_len, generator=torch.Generator().manual_seed(seed),
                                valid_geometry=valid_geometry)
    as_sampled = sum(_safe_sketch(s) is not None for s in samples) / len(samples)
    repaired, degenerate = map(list, zip(*(_drop_degenerate(s, g) for s in samples)))
    if drop_degenerate:
        samples = repaired
    parsed = [(s, _safe_sketch(s)) for s in samples]
    ok_seqs = [s for s, sk in parsed if sk is not None and len(sk.primitives) > 0]
    raw = infer_constraints(cons, ok_seqs, dedupe=False, tolerance=tolerance if residual_mask else None) if ok_seqs else []
    deduped = [dedupe_constraints(c, cons.cgrammar) for c in raw]  # repeats counted, then dropped
    cons_pred = [c for c, _ in deduped]
    solved = full = intact = 0
    dof_left, dof_free = [], []
    sample_sketches = []
    statuses = Counter()
    unmet, residuals = [], []
    for s, cp in zip(ok_seqs, cons_pred):
        sk = _safe_sketch(s, cp)
        if sk is None:
            continue
        residuals += [r for r in relative_residuals(sk) if r is not None]
        if tolerance is not None:
            sk, dropped = drop_unmet(sk, tolerance)
            unmet.append(dropped)
        sample_sketches.append(sk)
        status, dof, result = solve_outcome(sk)
        statuses[status] += 1
        ok = status == "ok"
        solved, full = solved + ok, full + (ok and dof == 0)
        intact += bool(ok and collapsed_primitives(result) == 0)
        if ok:
            free = solve_sketch(type(sk)(list(sk.primitives), [], sk.name))[1]
            dof_left.append(dof)
            dof_free.append(free)
    n_s = len(samples)
    counts = Counter(p.type for sk in sample_sketches for p in sk.primitives)
    stats = {
        "n": n_s,
        "parse_fraction": len(ok_seqs) / n_s,
        "parse_fraction_as_sampled": as_sampled,
        "valid_geometry": valid_geometry,
        "drop_degenerate": drop_degenerate,
        "degenerate_primitives_mean": float(np.mean([len(d) for d in degenerate])),
        "degenerate_primitives_by_type": dict(sorted(Counter(t for d in degenerate for t in d).items())),
        "solve_fraction": solved / n_s,
        "solve_intact_fraction": intact / n_s,
        "solve_status_counts": dict(sorted(statuses.items())),
        "fully_constrained_fraction": full / n_s,
        "duplicate_constraints_removed_mean": (float(np.mean([r for _, r in deduped])) if deduped
                                               else float("nan")),
        "inferred_constraints_mean": float(np.mean([len(c) for c in cons_pred])) if cons_pred else float("nan"),
        # how far the sampled geometry is from meeting the inferred constraints (share of its long side)
        "inferred_residual_median": float(np.median(residuals)) if residuals else float("nan"),
        "inferred_residual_above_tenth": float(np.mean(np.array(residuals) > 0.1)) if residuals else float("nan"),
        "tolerance": tolerance,
        "residual_mask": residual_mask,
        "unmet_constraints_removed_mean": float(np.mean(unmet)) if unmet else float("nan"),
        "kept_constraints_mean": float(np.mean([len(sk.constraints) for sk in sample_sketches])) if sample_sketches
        else float("nan"),
        "mean_dof_left": float(np.mean(dof_left)) if dof_left else float("nan"),
        "dof_removed_fraction": float(1 - np.sum(dof_left) / max(np.sum(dof_free), 1)) if dof_free else float("nan"),
        "mean_primitives": float(np.mean([len(g.decode(s)) for s in samples])),
        "primitive_type_fractions": {t: counts[t] / max(sum(counts.values()), 1) for t in sorted(counts)},
    }
    return stats, sample_sketches


def run_experiment(out: Path, quick: bool, seed: int, log=print) -> tuple[dict, str, dict]:
    """Train and evaluate; returns (metrics, markdown, figures {name: matplotlib figure})."""
    from quintet.core.seed import seed_everything
    from quintet.sketch.models import (
        ConstraintModel,
        ConstraintModelConfig,
        PrimitiveGrammar,
        PrimitiveModel,
        PrimitiveModelConfig,
        init_from_unconditional,
        perturb_bins,
    )
    from quintet.sketch.models.metrics import constraint_accuracy, model_bits
    from quintet.sketch.models.sample import infer_constraints, sample_primitives
    from quintet.sketch.models.train import (
        TrainConfig,
        constraint_batches,
        primitive_batches,
        train,
    )

    cfg = ModelsExperimentConfig.for_scale(quick, seed)
    seed_everything(seed)
    # One thread: on a CPU shared by several jobs, more threads spin against each other (a step of
    # the quick model took 7 s with 2 threads and 0.3 s with 1 under a load of 7 on 2 cores).
    # QUINTET_SKETCH_THREADS overrides this on a machine of one's own.
    torch.set_num_threads(int(os.environ.get("QUINTET_SKETCH_THREADS", "1")))
    g = PrimitiveGrammar()
    t_start = time.perf_counter()
    metrics: dict = {"config": asdict(cfg)}
    figures: dict = {}

    # data
    sketches = procedural_sketches(cfg.n_train + cfg.n_test, seed, cfg.max_primitives)
    pvals, cvals = tokenize_all(sketches)
    tr_p, tr_c = pvals[: cfg.n_train], cvals[: cfg.n_train]
    te_p, te_c = pvals[cfg.n_train :], cvals[cfg.n_train :]
    real = real_sketches(cfg.max_primitives)
    re_p, re_c = tokenize_all(real)
    max_len = max(len(p) for p in pvals + re_p)
    metrics["data"] = {"train": len(tr_p), "test": len(te_p), "real_sketchgraphs": len(re_p), "max_tokens": max_len}
    log(f"[models] data: {metrics['data']}")
    size = dict(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=4 * cfg.d_model,
                max_primitives=cfg.max_primitives)
    ckpt = out / "checkpoints"

    # 1. primitive model
    prim = PrimitiveModel(PrimitiveModelConfig(**size))
    tc = TrainConfig(steps=cfg.prim_steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup=min(100, cfg.prim_steps // 10),
                     checkpoint_every=min(50, cfg.prim_steps), seed=seed)
    r = train(prim, primitive_batches(g, tr_p, cfg.batch_size, seed), tc, ckpt / "primitive", description="primitive")
    metrics["train_primitive"] = {k: v for k, v in r.items() if k != "history"}
    histories = {"primitive": r["history"]}

    # 2. constraint model (trained on noisy primitives)
    cons = ConstraintModel(ConstraintModelConfig(**size, n_encoder_layers=cfg.n_layers // 2 + 1,
                                                 noise_std=cfg.noise_std))
    cons.config.n_layers = cfg.n_layers // 2 + 1
    cons = ConstraintModel(cons.config)
    tc = TrainConfig(steps=cfg.cons_steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup=min(100, cfg.cons_steps // 10),
                     checkpoint_every=min(50, cfg.cons_steps), seed=seed)
    r = train(cons, constraint_batches(g, tr_p, tr_c, cfg.batch_size, seed, cfg.noise_std), tc, ckpt / "constraint",
              description="constraint")
    metrics["train_constraint"] = {k: v for k, v in r.items() if k != "history"}
    histories["constraint"] = r["history"]

    # 3. image-conditioned primitive model on hand-drawn renderings
    imgm = PrimitiveModel(PrimitiveModelConfig(kind="image-primitive", **size, image_layers=cfg.image_layers))
    if cfg.image_init == "primitive":  # two stages: the decoder starts as the trained primitive model
        init_from_unconditional(imgm, prim)
    elif cfg.image_init != "scratch":
        raise QuintetError(f"image_init must be 'primitive' or 'scratch', got {cfg.image_init!r}")
    tc = TrainConfig(steps=cfg.image_steps, batch_size=cfg.batch_size, lr=cfg.image_lr,
                     warmup=min(cfg.image_warmup, cfg.image_steps // 10),
                     checkpoint_every=min(50, cfg.image_steps), seed=seed)
    r = train(imgm, primitive_batches(g, tr_p, cfg.batch_size, seed,
                                      images=lambda idx, step: render_batch([tr_p[i] for i in idx], seed * 7919 + step)),
              tc, image_checkpoint_dir(ckpt, cfg.image_key()), description="image")
    metrics["train_image"] = {k: v for k, v in r.items() if k != "history"}
    histories["image"] = r["history"]
    log(f"[models] trained in {time.perf_counter() - t_start:.0f} s")

    # ---- evaluation: bits
    rows = []
    for name, seqs in (("procedural (held out)", te_p), ("SketchGraphs sample (filtered)", re_p)):
        if not seqs:
            continue
        key = "procedural" if name.startswith("proc") else "sketchgraphs"
        metrics[f"bits_{key}"] = bits_measures(prim, seqs)
        rows.append(bits_row(name, metrics[f"bits_{key}"]))

    # ---- constraint model
    gen = torch.Generator().manual_seed(seed + 11)
    acc = constraint_accuracy(cons, g, te_p, te_c, noise_std=cfg.noise_std, generator=gen)
    n_inf = min(len(te_p), 100)
    noisy = [perturb_bins(torch.tensor(p), g, cfg.noise_std, generator=gen).tolist() for p in te_p[:n_inf]]
    t0 = time.perf_counter()
    inferred = infer_constraints(cons, noisy)
    per_sketch = (time.perf_counter() - t0) / n_inf
    metrics["constraints"] = {
        "teacher_forced_accuracy": acc["accuracy"],
        "pointer_accuracy": acc["pointer_accuracy"],
        **set_scores(inferred, te_c[:n_inf]),
        "inference_seconds_per_sketch": per_sketch,
    }
    if re_p:
        real_acc = constraint_accuracy(cons, g, re_p, re_c)
        metrics["constraints"]["sketchgraphs_teacher_forced_accuracy"] = real_acc["accuracy"]

    # ---- image to primitives
    n_img = min(len(te_p), 100)
    imgs = render_batch(te_p[:n_img], seed + 99, augment=False)  # geometry as drawn, no affine
    bits_img = model_bits(imgm, te_p[:n_img], images=imgs)
    bits_noimg = model_bits(prim, te_p[:n_img])
    greedy, recall = image_recall(imgm, te_p[:n_img], imgs, max_len + 20)
    metrics["image_to_primitive"] = {
        **recall,
        "bits_per_primitive_image": bits_img["bits_per_primitive"],
        "bits_per_primitive_unconditional": bits_noimg["bits_per_primitive"],
    }

    # ---- samples: parse, solve, fully constrained
    metrics["samples"], sample_sketches = sample_and_solve(prim, cons, cfg.n_samples, cfg.top_p, max_len, seed + 5)
    metrics["samples_any_geometry"], _ = sample_and_solve(prim, cons, cfg.n_samples, cfg.top_p, max_len, seed + 5,
                                                          valid_geometry=False)
    # the same measures for held-out procedural sketches with their true constraints
    true_ok = true_full = 0
    n_ref = min(len(te_p), 48)
    for p_, c_ in zip(te_p[:n_ref], te_c[:n_ref]):
        sk = _safe_sketch_tokens(p_, c_)
        if sk is not None:
            ok, dof, _ = solve_sketch(sk)
            true_ok, true_full = true_ok + ok, true_full + (ok and dof == 0)
    metrics["samples"]["reference_true_constraints"] = {"n": n_ref, "solve_fraction": true_ok / n_ref,
                                                        "fully_constrained_fraction": true_full / n_ref}

    # ---- figures
    figures["models_samples.png"] = grid_figure([sample_sketches[i : i + 8] for i in range(0, min(len(sample_sketches), 24), 8)])
    primer_rows, titles = [], []
    for k in range(4):
        true = te_p[k]
        prims = g.decode(true)
        half = g.encode(prims[: max(1, len(prims) // 2)])[:-1]
        comp = sample_primitives(prim, 4, primers=[half], top_p=cfg.top_p, max_len=max_len,
                                 generator=torch.Generator().manual_seed(seed + 20 + k))
        primer_rows.append([_safe_sketch(true), _safe_sketch(half + [2])] + [_safe_sketch(c) for c in comp])
        titles.append("truth | primer (first half) | 4 completions" if k == 0 else None)
    figures["models_primers.png"] = grid_figure(primer_rows, [t or "" for t in titles])
    img_rows = []
    for k in range(4):
        img_rows.append([(imgs[k, 0].numpy() * 255).astype(np.uint8), _safe_sketch(greedy[k]), _safe_sketch(te_p[k])])
    figures["models_image_to_sketch.png"] = grid_figure(img_rows, ["hand drawing | inferred | truth", "", "", ""])
    figures["models_training.png"] = _loss_figure(histories)

    from quintet.sketch.models.real_experiment import RealExperimentConfig, run_real

    metrics["real"], real_lines, real_figures = run_real(ckpt, RealExperimentConfig.for_scale(quick, seed), prim, cons, imgm, log)
    figures.update(real_figures)
    metrics["seconds"] = round(time.perf_counter() - t_start, 1)
    md = _markdown(metrics, rows) + "\n".join(real_lines)
    return metrics, md, figures


def _loss_figure(histories: dict):
    from quintet.core.plotting import plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, h in histories.items():
        if h:
            steps, losses = zip(*h)
            k = max(1, len(losses) // 50)
            sm = np.convolve(losses, np.ones(k) / k, mode="valid")
            ax.plot(steps[: len(sm)], np.array(sm) / math.log(2), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (bits / token)")
    ax.legend()
    fig.tight_layout()
    return fig


def _resumed_note(m: dict) -> str:
    """Say when this invocation resumed trained models, so its time is not read as training time."""
    steps = [m.get(f"train_{name}", {}).get("resumed_from") or 0 for name in ("primitive", "constraint", "image")]
    if not any(steps):
        return ""
    return (" in this invocation, which resumed the models from their checkpoints at steps "
            + " / ".join(str(s) for s in steps) + " (training time not included)")


def _markdown(m: dict, rows: list) -> str:
    from quintet.core.runs import markdown_table

    c, im, s, u = m["constraints"], m["image_to_primitive"], m["samples"], m["samples_any_geometry"]
    lines = [
        "## Vitruvion models (primitive, constraint, image-conditioned)",
        "",
        f"Procedural corpus: {m['data']['train']} training / {m['data']['test']} held-out sketches; "
        f"{m['data']['real_sketchgraphs']} real SketchGraphs sketches pass the filter (never trained on). "
        f"Models: d={m['config']['d_model']}, {m['config']['n_layers']} layers; steps "
        f"{m['config']['prim_steps']} / {m['config']['cons_steps']} / {m['config']['image_steps']} "
        f"(primitive / constraint / image), batch {m['config']['batch_size']}; {m['seconds']:.0f} s in all"
        + _resumed_note(m) + ". "
        f"Image model: ViT encoder with {m['config']['image_layers']} layers, learning rate "
        f"{m['config']['image_lr']:g}, decoder "
        + ("initialised from the trained primitive model (two stages)" if m['config']['image_init'] == "primitive"
           else "trained from scratch") + ".",
        "",
        "### Bits (NLL / ln 2; lower is better)",
        "",
        markdown_table(rows, BITS_HEADER),
        "The paper reports, on the SketchGraphs test set, a primitive model well below both the uniform "
        "and the LZMA baselines in bits per primitive (its Table 1); at this machine's scale the numbers "
        "are not comparable in size, but the ordering model < LZMA < uniform is what to check.",
        "",
        "### Constraint model (pointer network, trained with truncated-normal noise std 0.15)",
        "",
        markdown_table([
            ["teacher-forced next-token accuracy (noisy primitives)", c["teacher_forced_accuracy"]],
            ["pointer (reference) accuracy", c["pointer_accuracy"]],
            ["greedy constraint set precision", c["greedy_precision"]],
            ["greedy constraint set recall", c["greedy_recall"]],
            *([["teacher-forced accuracy, real SketchGraphs", c["sketchgraphs_teacher_forced_accuracy"]]]
              if "sketchgraphs_teacher_forced_accuracy" in c else []),
            ["inference time per sketch (s, batched greedy)", c["inference_seconds_per_sketch"]],
        ], ["measure", "value"]),
        "### Image to primitives (hand-drawn 128×128 renderings of held-out sketches)",
        "",
        markdown_table([
            ["primitive recall (type equal, all bins within 2)", im["primitive_recall_2bins"]],
            ["primitive precision", im["primitive_precision_2bins"]],
            ["sketches reconstructed exactly (within 2 bins)", im["sketch_exact_2bins"]],
            ["bits/primitive with the image", im["bits_per_primitive_image"]],
            ["bits/primitive without (primitive model)", im["bits_per_primitive_unconditional"]],
        ], ["measure", "value"]),
        "### Sampled sketches (nucleus p = 0.9)",
        "",
        markdown_table([
            ["samples", s["n"], u["n"]],
            ["parse (grammatical, no degenerate primitive)", s["parse_fraction"], u["parse_fraction"]],
            ["degenerate primitives per sample (mean)", s["degenerate_primitives_mean"], u["degenerate_primitives_mean"]],
            ["duplicate constraints removed (mean per parsed sample)", s["duplicate_constraints_removed_mean"],
             u["duplicate_constraints_removed_mean"]],
            ["solve with SolveSpace after constraint inference", s["solve_fraction"], u["solve_fraction"]],
            ["solve with no primitive collapsed in the solution", s["solve_intact_fraction"], u["solve_intact_fraction"]],
            ["fully constrained after constraint inference", s["fully_constrained_fraction"], u["fully_constrained_fraction"]],
            ["mean degrees of freedom left (solved samples)", s["mean_dof_left"], u["mean_dof_left"]],
            ["fraction of the free DOF removed by inferred constraints", s["dof_removed_fraction"], u["dof_removed_fraction"]],
            ["reference: held-out sketches with true constraints, solve / fully constrained",
             f"{s['reference_true_constraints']['solve_fraction']:.2f} / "
             f"{s['reference_true_constraints']['fully_constrained_fraction']:.2f}", "—"],
            ["mean primitives per sample", s["mean_primitives"], u["mean_primitives"]],
        ], ["measure", "validity mask (default sampler)", "no mask"]),
        "Both columns draw from the same model and seed; the validity mask removes, token by token, the "
        "coordinate bins that would make the primitive being drawn degenerate "
        "(see `quintet.sketch.models.validity`).",
        "",
        "Dimensions are not tokenised (as in the paper) and the only geometric constraint that pins "
        "geometry, Fix, anchors a training sketch once, so sizes stay free and \"fully constrained\" "
        "cannot be expected above 0; the fraction of the free DOF removed is the informative measure.",
        "",
        "![samples](models_samples.png) ![primers](models_primers.png) "
        "![image to sketch](models_image_to_sketch.png) ![training](models_training.png)",
        "",
    ]
    return "\n".join(lines)
