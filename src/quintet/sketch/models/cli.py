"""Command line of the Vitruvion models: ``quintet sketch train`` and ``quintet sketch generate``,
plus this part's share of ``quintet reproduce sketch`` and ``quintet demo``.

:func:`register` adds the commands to the sketch package's typer app; :func:`models_report`
runs the experiment for reproduce; :func:`models_demo` is the short tour. Module-level imports
stay light: torch is imported inside the functions.

This module is the whole ``quintet sketch`` command line: importing it installs the model layer
into the foundation's :data:`quintet.sketch.cli.app` (whose module never imports the models), and
it exposes that ``app`` with ``reproduce`` and ``demo`` for the top-level CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal, Optional

import typer

from quintet.core import options
from quintet.core.errors import QuintetError, check_choice
from quintet.sketch.cli import DEMO_SECTIONS, REPORT_SECTIONS, app, demo, reproduce  # noqa: F401  (demo, reproduce: for quintet.cli)

MODEL_CHOICES = {"primitive": "primitive", "constraint": "constraint", "image": "image-primitive"}
DEFAULT_MODELS = Path("runs/sketch-models")
N_HEADS = 4
MAX_N_TRAIN = 1_000_000
DATA_CHOICES = ("procedural", "sketchgraphs")
#: where ``quintet reproduce sketch`` keeps its trained models (usable with ``generate --models``);
#: a rerun with the same scale and seed resumes from them instead of training again.
REPRODUCE_MODELS = Path("runs/sketch-models-reproduce")
#: ``generate``'s residual-mask tolerance: about the 99th percentile of the true constraints'
#: residuals on real validation sketches (2.87 % of the long side in the committed reproduction)
DEFAULT_RESIDUAL_MASK = 0.03


# ---- library functions behind the commands ----------------------------------------------------


def train_model(which: str, out: Path, *, steps: int = 2000, n_train: int = 4000, batch_size: int = 32,
                d_model: int = 128, n_layers: int = 4, n_heads: int = N_HEADS, lr: float = 1e-3, seed: int = 0,
                image_layers: int = 2, init_from: Optional[Path] = None, cpu: bool = False,
                progress: bool = True, data: str = "procedural") -> dict:
    """Train one model (``primitive``, ``constraint`` or ``image``) into ``out`` (resuming from its
    latest checkpoint); returns the training summary.

    ``data``: ``procedural`` (``n_train`` corpus sketches) or ``sketchgraphs`` (the train split of
    the filtered construction sequences; the primitive model then stops early on the validation
    split's bits per primitive).

    ``image`` only: ``image_layers`` ViT encoder layers; ``init_from`` a trained primitive model's
    checkpoint whose decoder the image model starts from (the two-stage schedule of
    :func:`quintet.sketch.models.primitive.init_from_unconditional`; its sizes must equal
    ``d_model``/``n_layers``/``n_heads``).
    """
    import torch

    from quintet.sketch.models import (
        ConstraintModel,
        ConstraintModelConfig,
        PrimitiveGrammar,
        PrimitiveModel,
        PrimitiveModelConfig,
    )
    from quintet.sketch.models.experiment import procedural_sketches, render_batch, tokenize_all
    from quintet.sketch.models.train import (
        TrainConfig,
        constraint_batches,
        primitive_batches,
        train,
    )

    check_choice("model", which, MODEL_CHOICES)
    check_choice("data", data, DATA_CHOICES)
    if d_model % n_heads:
        raise QuintetError(f"--d-model {d_model} is not a multiple of the {n_heads} attention heads")
    for name, value in (("steps", steps), ("n-train", n_train), ("batch-size", batch_size), ("layers", n_layers)):
        if value < 1:
            raise QuintetError(f"--{name} must be >= 1, got {value}")
    if init_from is not None and which != "image":
        raise QuintetError(f"--init-from starts an image model from a primitive model; not for --model {which}")
    import os

    torch.set_num_threads(int(os.environ.get("QUINTET_SKETCH_THREADS", "1")))  # see models_experiment
    torch.manual_seed(seed)
    g = PrimitiveGrammar()
    validate = None
    if data == "sketchgraphs":
        from quintet.sketch.models.metrics import model_bits
        from quintet.sketch.models.real_experiment import real_splits

        splits = real_splits()
        if not splits:
            raise QuintetError("--data sketchgraphs needs sketchgraphs/sequences.jsonl.xz under the data root (QUINTET_DATA)")
        pvals, cvals = tokenize_all(splits["train"])
        val_p = tokenize_all(splits["validation"])[0]
        if which == "primitive":
            from quintet.core.distributed import current

            def validate(m):  # each process scores its share of the validation split
                return model_bits(m, val_p, dist=current())["bits_per_primitive"]
    else:
        pvals, cvals = tokenize_all(procedural_sketches(n_train, seed))
    size = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ff=4 * d_model)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=min(100, steps // 10 + 1),
                      checkpoint_every=max(1, min(500, steps)), seed=seed, cpu=cpu, progress=progress)
    if which == "primitive":
        model = PrimitiveModel(PrimitiveModelConfig(**size))
        make = primitive_batches(g, pvals, batch_size, seed)
    elif which == "image":
        model = PrimitiveModel(PrimitiveModelConfig(kind="image-primitive", image_layers=image_layers, **size))
        if init_from is not None:
            _init_image_model(model, init_from)
        make = primitive_batches(g, pvals, batch_size, seed,
                                 images=lambda idx, step: render_batch([pvals[i] for i in idx], seed * 7919 + step))
    else:
        model = ConstraintModel(ConstraintModelConfig(**size, n_encoder_layers=max(1, n_layers // 2 + 1)))
        make = constraint_batches(g, pvals, cvals, batch_size, seed)
    result = train(model, make, cfg, out, description=which, validate=validate)
    result.pop("history")
    return result


def _init_image_model(model, primitive_checkpoint: Path) -> None:
    """Copy a trained primitive model's decoder into the image model ``model`` (stage two of the
    image model's training); a checkpoint of another kind or other sizes is a clear error."""
    from quintet.sketch.models import KIND_PRIMITIVE, init_from_unconditional, load_model

    primitive = load_model(primitive_checkpoint, KIND_PRIMITIVE)
    try:
        init_from_unconditional(model, primitive)
    except ValueError as exc:
        raise QuintetError(f"--init-from {primitive_checkpoint}: {exc}; pass the same --d-model/--layers") from exc


def _primer_tokens(path: Path) -> list[int]:
    """Value tokens (without Stop) of the sketch in a primer file (quintet sketch JSON), normalised to
    the primer's own bounding box (:func:`quintet.sketch.tokens.normalize_sketch`) and quantised."""
    from quintet.sketch.constraints import load_sketch
    from quintet.sketch.models.data import sketch_to_tokens

    sketch = load_sketch(path)
    if not sketch.primitives:
        raise QuintetError(f"primer {path} has no primitives")
    pval, _ = sketch_to_tokens(sketch)
    return pval[:-1]


def generate(out: Path, *, primer: Optional[Path] = None, image: Optional[Path] = None, n: int = 4,
             models: Path = DEFAULT_MODELS, primitive_model: Optional[Path] = None,
             constraint_model: Optional[Path] = None, image_model: Optional[Path] = None,
             top_p: float = 0.9, seed: int = 0, valid_geometry: bool = True,
             residual_mask: float | None = None) -> dict:
    """Image or primer (or nothing) -> primitives -> constraints -> SolveSpace -> JSON/DXF/SVG.

    ``valid_geometry`` samples under the validity mask (no zero-length line, zero-radius circle or
    collinear arc; :mod:`quintet.sketch.models.validity`); ``False`` samples the model as it is.
    ``residual_mask``: infer only constraints the sampled primitives meet within this share of
    their long side (:class:`~quintet.sketch.models.residual_check.ResidualMask`); any the mask
    could not avoid are dropped before solving.

    Writes ``sample_<k>.json`` (the sketch with inferred constraints, solved when SolveSpace
    converged), ``.dxf``/``.svg`` where the sketch package's writers exist, and ``summary.json``.
    """
    import torch

    from quintet.sketch.models import (
        KIND_CONSTRAINT,
        KIND_IMAGE_PRIMITIVE,
        KIND_PRIMITIVE,
        load_model,
    )
    from quintet.sketch.models.data import constraint_tokens, load_png, tokens_to_sketch
    from quintet.sketch.models.residual_check import drop_unmet
    from quintet.sketch.models.sample import infer_constraints, sample_primitives

    if primer is not None and image is not None:
        raise QuintetError("give either --primer or --image, not both")
    if n < 1:
        raise QuintetError(f"--n must be >= 1, got {n}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if image is not None:
        img = torch.from_numpy(load_png(image)).float().div(255.0)[None, None]
        pm = load_model(image_model or models / "image", KIND_IMAGE_PRIMITIVE)
        seqs = sample_primitives(pm, n, image=img, top_p=top_p, generator=gen, valid_geometry=valid_geometry)
    else:
        pm = load_model(primitive_model or models / "primitive", KIND_PRIMITIVE)
        primers = [_primer_tokens(primer)] if primer is not None else None
        seqs = sample_primitives(pm, n, primers=primers, top_p=top_p, generator=gen, valid_geometry=valid_geometry)
    cm = load_model(constraint_model or models / "constraint", KIND_CONSTRAINT)
    cons = infer_constraints(cm, seqs, tolerance=residual_mask)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for k, (s, c) in enumerate(zip(seqs, cons)):
        entry = {"sample": k, "tokens": s, "n_constraints": len(c)}
        try:
            sk = tokens_to_sketch(s, constraint_tokens(c), name=f"sample_{k}")
        except QuintetError as exc:
            entry["error"] = str(exc)
            summary.append(entry)
            continue
        if residual_mask is not None:
            sk, entry["unmet_constraints_dropped"] = drop_unmet(sk, residual_mask)
        entry.update(_solve_and_write(sk, out / f"sample_{k}"))
        summary.append(entry)
    from quintet.core.io import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    return {"samples": summary, "out": str(out)}


def _solve_and_write(sketch, stem: Path) -> dict:
    """Solve with SolveSpace, write JSON (+ DXF/SVG when available); returns what happened."""
    from quintet.sketch.constraints import save_sketch
    from quintet.sketch.models.experiment import solve_sketch

    info: dict = {"primitives": len(sketch.primitives)}
    solved, dof, result_sketch = solve_sketch(sketch)
    info.update(solved=solved, dof=dof)
    final = result_sketch if solved else sketch
    save_sketch(final, stem.with_suffix(".json"))
    files = [stem.with_suffix(".json").name]
    for suffix, writer in _writers().items():
        try:
            writer(final, stem.with_suffix(suffix))
            files.append(stem.with_suffix(suffix).name)
        except QuintetError as exc:
            info[f"{suffix[1:]}_error"] = str(exc)
    info["files"] = files
    return info


def _writers() -> dict:
    """The sketch package's file writers: DXF (:func:`quintet.sketch.io.dxf.write_dxf`) and SVG
    (:func:`quintet.sketch.io.render.save_figure_file`)."""
    from quintet.sketch.io.dxf import write_dxf
    from quintet.sketch.io.render import save_figure_file

    return {".dxf": write_dxf, ".svg": lambda sk, path: save_figure_file(sk, path, constraints=True)}


# ---- typer commands ----------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``generate`` to the sketch app."""

    @app.command("train")
    def train_cmd(
        model: Literal["primitive", "constraint", "image"] = typer.Option("primitive", help="primitive, constraint or image"),
        out: Optional[Path] = options.output_folder(None, "Checkpoint directory (default runs/sketch-models/<model>); resumes."),
        steps: int = options.steps(2000, "Optimiser steps."),
        n_train: int = typer.Option(4000, min=1, max=MAX_N_TRAIN, help="Procedural training sketches."),
        batch_size: int = typer.Option(32, min=1, max=65536, help="Sketches per step."),
        d_model: int = typer.Option(128, min=N_HEADS, max=4096, help=f"Model width (a multiple of the {N_HEADS} heads)."),
        layers: int = typer.Option(4, min=1, max=64, help="Transformer layers."),
        lr: float = options.positive(1e-3, "AdamW learning rate.", maximum=10.0),
        seed: int = options.seed(),
        image_layers: int = typer.Option(2, min=1, max=64, help="--model image: ViT encoder layers."),
        init_from: Optional[Path] = options.input_folder(
            None, "--model image: trained primitive checkpoint (e.g. runs/sketch-models/primitive) whose "
                       "decoder the image model starts from (the two-stage schedule; same --d-model/--layers)."),
        cpu: bool = typer.Option(False, help="Stay on the CPU even where a GPU exists."),
        data: Literal["procedural", "sketchgraphs"] = typer.Option(
            "procedural", help="procedural corpus, or the train split of the real SketchGraphs sequences "
                               "(early stopping on the validation split for --model primitive)."),
    ) -> None:
        """Train a Vitruvion model (checkpoints every few minutes and on Ctrl-C; resumes)."""
        target = out or DEFAULT_MODELS / model
        r = train_model(model, target, steps=steps, n_train=n_train, batch_size=batch_size, d_model=d_model,
                        n_layers=layers, lr=lr, seed=seed, image_layers=image_layers, init_from=init_from, cpu=cpu,
                        data=data)
        from quintet.core.distributed import current

        if current().is_main:  # under `accelerate launch` one line, from the main process
            typer.echo(f"{model} model in {target}: {json.dumps(r)}")

    @app.command("generate")
    def generate_cmd(
        out: Path = options.output_folder(..., "Folder that receives the sketches."),
        primer: Optional[Path] = options.input_file(
            None, "Sketch JSON to autocomplete. Like every training sketch it is normalised to its own "
                       "bounding box (centred, long side scaled to 1, 64 bins), so the completion stays inside "
                       "that square and is written in the normalised frame, not the file's units."),
        image: Optional[Path] = options.input_file(None, "128×128 grayscale PNG of a hand drawing."),
        n: int = typer.Option(4, min=1, max=10_000, help="How many sketches."),
        models: Path = options.input_folder(DEFAULT_MODELS, "Folder with primitive/, constraint/, image/ checkpoints."),
        top_p: float = options.positive(0.9, "Nucleus sampling mass.", maximum=1.0),
        seed: int = options.seed(),
        valid_geometry: bool = typer.Option(
            True, "--valid-geometry/--any-geometry",
            help="Sample only valid geometry (no zero-length line, zero-radius circle or arc through collinear "
                 "points: those coordinate bins are masked), or the model's distribution as it is."),
        residual_mask: float = options.fraction(
            DEFAULT_RESIDUAL_MASK, "Infer only constraints the sampled primitives meet within this share of their "
            "long side and name the way they lie; 0 lets the constraint model decode unrestricted, as in the paper."),
    ) -> None:
        """Image or primer -> primitives -> constraints -> SolveSpace -> JSON/DXF/SVG."""
        r = generate(out, primer=primer, image=image, n=n, models=models, top_p=top_p, seed=seed,
                     valid_geometry=valid_geometry, residual_mask=residual_mask or None)
        for s in r["samples"]:
            typer.echo(f"sample {s['sample']}: " + (s.get("error") or
                       f"{s['primitives']} primitives, {s['n_constraints']} constraints, solved={s['solved']}, dof={s['dof']}"))
        typer.echo(f"written to {out}")


# ---- reproduce and demo ------------------------------------------------------------------------


def models_report(out: Path, quick: bool, seed: int = 0) -> tuple[dict, str]:
    """Run the models experiment into ``out`` (figures ``models_*.png``, ``models_results.json``,
    ``models_results.md``); returns (metrics, markdown section)."""
    from quintet.core.io import atomic_write_json, atomic_write_text
    from quintet.core.plotting import plt
    from quintet.sketch.models.experiment import run_experiment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from quintet.sketch.models.experiment import ModelsExperimentConfig

    work = REPRODUCE_MODELS / ModelsExperimentConfig.for_scale(quick, seed).key()
    metrics, md, figures = run_experiment(work, quick, seed)
    metrics["checkpoints"] = str(work / "checkpoints")
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
    atomic_write_json(out / "models_results.json", metrics)
    atomic_write_text(out / "models_results.md", md)
    return metrics, md


def models_section(run, quick: bool, seed: int) -> str:
    """A ``REPORT_SECTIONS`` entry of :mod:`quintet.sketch.cli`: runs :func:`models_report` into
    ``run.path``, logs its metrics under ``"models"`` and returns the Markdown section."""
    metrics, md = models_report(run.path, quick, seed)
    run.log_metrics({"models": metrics})
    return md


def install(app: typer.Typer, report_sections: list, demo_sections: list) -> None:
    """Hook this module into the sketch CLI: commands, reproduce section, demo section."""
    register(app)
    report_sections.append(models_section)
    demo_sections.append(models_demo)


def models_demo(run) -> str:
    """A < 40 s tour: train a tiny primitive and constraint model on procedural sketches, sample,
    infer constraints, solve; saves ``sketch_models_demo.png``. Runs on one torch thread (see
    :mod:`quintet.sketch.models.experiment`; ``QUINTET_SKETCH_THREADS`` overrides) and restores
    the caller's thread count afterwards."""
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("QUINTET_SKETCH_THREADS", "1")))
    try:
        return _models_demo(run)
    finally:
        torch.set_num_threads(before)


def _models_demo(run) -> str:
    """A < 40 s tour: train a tiny primitive and constraint model on procedural sketches, sample,
    infer constraints, solve; saves ``sketch_models_demo.png``."""
    import torch

    from quintet.sketch.models import (
        ConstraintModel,
        ConstraintModelConfig,
        PrimitiveGrammar,
        PrimitiveModel,
        PrimitiveModelConfig,
    )
    from quintet.sketch.models.experiment import (
        _safe_sketch,
        grid_figure,
        procedural_sketches,
        solve_status,
        tokenize_all,
    )
    from quintet.sketch.models.metrics import lzma_bits, model_bits
    from quintet.sketch.models.sample import infer_constraints, sample_primitives
    from quintet.sketch.models.train import (
        TrainConfig,
        constraint_batches,
        primitive_batches,
        train,
    )

    t0 = time.perf_counter()
    torch.manual_seed(0)
    g = PrimitiveGrammar()
    pv, cv = tokenize_all(procedural_sketches(300, 0))
    tr, te = pv[:250], pv[250:]
    size = dict(d_model=64, n_layers=2, n_heads=4, d_ff=256)
    prim = PrimitiveModel(PrimitiveModelConfig(**size))
    train(prim, primitive_batches(g, tr, 16), TrainConfig(steps=60, warmup=5, lr=3e-3, progress=False))
    cons = ConstraintModel(ConstraintModelConfig(**size, n_encoder_layers=1))
    train(cons, constraint_batches(g, tr, cv[:250], 16), TrainConfig(steps=40, warmup=5, lr=3e-3, progress=False))
    bits = model_bits(prim, te)["bits_per_primitive"]
    lz = lzma_bits(te, g)["bits_per_primitive"]
    samples = sample_primitives(prim, 8, generator=torch.Generator().manual_seed(0))
    inferred = infer_constraints(cons, samples)
    sketches = [_safe_sketch(s, c) for s, c in zip(samples, inferred)]
    solved = sum(solve_status(s)[0] for s in sketches if s is not None)
    fig = grid_figure([sketches[:4], sketches[4:]])
    run.save_figure(fig, "sketch_models_demo.png")
    secs = time.perf_counter() - t0
    return (
        "## sketch models (Vitruvion)\n\n"
        f"A tiny primitive model (60 steps) and constraint model (40 steps) trained on 250 procedural "
        f"sketches in {secs:.0f} s: {bits:.1f} bits/primitive on 50 held-out sketches (LZMA: {lz:.1f}); "
        f"{sum(s is not None for s in sketches)}/8 samples parse, {solved}/8 solve with SolveSpace after "
        "constraint inference.\n\n![samples](sketch_models_demo.png)\n"
    )


install(app, REPORT_SECTIONS, DEMO_SECTIONS)
