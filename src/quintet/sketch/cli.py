"""The foundation's commands of ``quintet sketch``: show, solve, export, corpus, stats; plus
reproduce/demo for ``sketch``.

This module imports nothing from :mod:`quintet.sketch.models`. The model layer adds its commands
(``train``, ``generate``) and its report sections (:data:`REPORT_SECTIONS`, :data:`DEMO_SECTIONS`)
to :data:`app` in :mod:`quintet.sketch.models.cli`, which is the module behind ``quintet sketch``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from quintet.core import options
from quintet.core.errors import QuintetError

app = typer.Typer(help="Parametric CAD sketches (Vitruvion): solve, draw, export, corpus.", no_args_is_help=True)

#: ``fn(run, quick, seed) -> markdown`` sections appended to ``reproduce`` after the foundation.
REPORT_SECTIONS: list[Callable] = []
#: ``fn(run) -> markdown`` sections appended to the demo after the foundation tour.
DEMO_SECTIONS: list[Callable] = []


def _load(path: Path):
    """A sketch from JSON (``quintet-sketch/1``) or from an Onshape FeatureScript JSON (first sketch)."""
    from quintet.sketch.constraints import Sketch, load_sketch

    if not path.is_file():
        raise QuintetError(f"sketch file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuintetError(f"sketch file {path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and "primitives" in data:
        return load_sketch(path)
    if isinstance(data, (list, dict)):
        from quintet.sketch.io.sketchgraphs import parse_document

        feats = data if isinstance(data, list) else [data]
        parsed = parse_document(path.name, feats)
        if not parsed:
            raise QuintetError(f"{path}: no sketch in the document")
        return parsed[0].sketch
    raise QuintetError(f"{path}: expected a sketch object or an Onshape sketch document")
    return Sketch()


@app.command()
def show(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Sketch JSON (or Onshape FeatureScript JSON)."),
    out: Optional[Path] = options.output_file(None, "Output .png or .svg (default: FILE with .png).", (".png", ".svg")),
    constraints: bool = typer.Option(False, "--constraints", help="Draw constraint glyphs."),
    hand_drawn: bool = typer.Option(False, "--hand-drawn", help="Write the 128×128 hand-drawn rendering instead."),
    seed: int = options.seed(0, "Seed of the hand-drawn noise."),
) -> None:
    """Draw a sketch to PNG or SVG."""
    from quintet.sketch.io.render import render_hand_drawn, save_figure_file

    if hand_drawn and out is not None and out.suffix.lower() != ".png":
        raise QuintetError(f"--hand-drawn writes a PNG; --out {out} must end in .png")
    sketch = _load(file)
    out = out or file.with_suffix(".png")
    if hand_drawn:  # the model's input image: one 8-bit grey channel, black ink on white
        import io

        import numpy as np
        from PIL import Image

        from quintet.core.io import atomic_write_bytes

        img = render_hand_drawn(sketch, seed)
        buf = io.BytesIO()
        Image.fromarray(np.round((1 - img) * 255).astype(np.uint8), mode="L").save(buf, format="png")
        atomic_write_bytes(out, buf.getvalue())
    else:
        save_figure_file(sketch, out, constraints=constraints)
    typer.echo(f"wrote {out}")


@app.command()
def solve(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Sketch JSON."),
    out: Optional[Path] = options.output_file(None, "Write the solved sketch here (JSON).", (".json",)),
    timeout: float = options.positive(20.0, "Seconds before the solver is given up.", maximum=86400.0),
) -> None:
    """Solve a sketch with SolveSpace; print status and degrees of freedom.

    Exit status 0 when solved, 1 when the sketch is inconsistent, did not converge or has too
    many unknowns, 2 on a solver error (crash, timeout) or bad input."""
    from quintet.sketch.constraints import save_sketch
    from quintet.sketch.geometry import max_residual
    from quintet.sketch.solve import solve as run_solve

    sketch = _load(file)
    res = run_solve(sketch, timeout=timeout)
    typer.echo(f"{file}: {len(sketch.primitives)} primitives, {len(sketch.constraints)} constraints")
    typer.echo(f"status: {res.describe(sketch)}")
    if res.ok:
        typer.echo(f"max residual before {max_residual(sketch):.3g}, after {max_residual(res.sketch):.3g}")
        if out is not None:
            save_sketch(res.sketch, out)
            typer.echo(f"wrote {out}")
    elif res.status == "error":
        raise QuintetError(f"{file}: solver error: {res.message}")
    else:
        raise typer.Exit(1)


@app.command()
def export(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Sketch JSON."),
    dxf: Path = options.output_file(..., "Output DXF file.", (".dxf",), "--dxf"),
) -> None:
    """Export a sketch's geometry to DXF."""
    from quintet.sketch.io.dxf import write_dxf

    write_dxf(_load(file), dxf)
    typer.echo(f"wrote {dxf}")


@app.command()
def corpus(
    n: int = typer.Option(100000, "--n", min=1, max=10_000_000, help="Number of sketches."),
    out: Path = options.output_folder(..., "Output folder (corpus.npz + meta.json).", "--out"),
    seed: int = options.seed(),
    workers: int = typer.Option(2, min=1, max=256, help="Worker processes."),
) -> None:
    """Generate the procedural corpus of mechanical sketches as tokens."""
    from quintet.sketch.corpus import write_corpus

    meta = write_corpus(out, n, seed=seed, workers=workers)
    typer.echo(f"wrote {meta['n']} sketches to {out} in {meta['seconds']} s ({meta['sketches_per_second']} sketches/s)")


@app.command()
def stats(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Corpus folder written by `quintet sketch corpus`."),
    limit: int = typer.Option(20000, min=1, max=100_000_000, help="Sketches to read."),
    compare: bool = typer.Option(True, help="Print the SketchGraphs sample's statistics beside (needs the data root)."),
) -> None:
    """Primitive/constraint frequencies and sizes of a corpus, beside the SketchGraphs sample's."""
    from quintet.sketch.corpus import corpus_stats, load_corpus, sketchgraphs_stats
    from quintet.sketch.experiments import _stats_table

    synth = corpus_stats(load_corpus(directory), limit)
    real = None
    if compare:
        try:
            real = sketchgraphs_stats()
        except QuintetError as exc:
            typer.echo(f"(SketchGraphs sample not available: {exc})")
    typer.echo(_stats_table(real, synth))


def reproduce(out: Path, quick: bool, seed: int) -> dict:
    """Foundation measurements (then any registered model sections) into ``out``."""
    from quintet.core.runs import Run
    from quintet.sketch.experiments import foundation_report

    run = Run(out, {"method": "sketch", "quick": quick, "seed": seed})
    text, metrics = foundation_report(run, quick=quick, seed=seed)
    sections = ["# Vitruvion sketches: reproduction\n", text]
    for fn in REPORT_SECTIONS:
        sections.append(fn(run, quick, seed))
    run.finish("\n".join(sections))
    return metrics


def demo(run) -> str:
    from quintet.sketch.experiments import foundation_demo

    parts = [foundation_demo(run)]
    for fn in DEMO_SECTIONS:
        parts.append(fn(run))
    return "\n".join(parts)
