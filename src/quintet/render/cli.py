"""``quintet render ...``: render a mesh, fit a camera pose, fit a shape; plus ``reproduce`` and
``demo`` for the top-level CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from quintet.core import options
from quintet.core.distributed import current
from quintet.core.errors import QuintetError

app = typer.Typer(help="GenDR: the generalized differentiable renderer (distributions × T-conorms).",
                  no_args_is_help=True)

_DIST_HELP = "Distribution: hard, uniform, cubic_hermite, wigner_semicircle, gaussian, laplace, logistic, " \
             "gudermannian, cauchy, reciprocal, gumbel_max, gumbel_min, exponential(_rev), gamma(_rev), levy(_rev)."
_TCN_HELP = "T-conorm: max, probabilistic, einstein, hamacher, frank, yager, aczel_alsina, dombi, schweizer_sklar."


def _distributions() -> tuple[str, ...]:
    from quintet.render.distributions import ALIASES, DISTRIBUTIONS

    return (*DISTRIBUTIONS, *ALIASES)


def _tconorms() -> tuple[str, ...]:
    from quintet.render.tconorms import TCONORMS

    return tuple(TCONORMS)


def _dist_option(default: str) -> Any:
    return options.choice(default, _distributions, _DIST_HELP, kind="distribution")


def _tconorm_option(default: str) -> Any:
    return options.choice(default, _tconorms, _TCN_HELP, kind="T-conorm")


def _p_option(help: str) -> Any:
    """The T-conorm parameter: any finite number in range (Schweizer-Sklar takes p < 0); the
    T-conorm checks its own range."""
    return typer.Option(None, min=-1e6, max=1e6, callback=options.finite, help=help)


def _threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _mesh_file(name: str, what: str = "mesh") -> Path:
    """A path as given, else a file of the data root's meshes/ folder (``teapot`` → teapot.obj)."""
    from quintet.datasets.registry import data_root

    path = Path(name)
    if path.is_file():
        return path
    root = data_root() / "meshes"
    for candidate in (root / name, root / f"{name}.obj"):
        if candidate.is_file():
            return candidate
    raise QuintetError(f"{what} {name!r} not found (neither a file nor in {root})")


def _found(what: str):
    """Typer callback of a mesh file or name: it is found (:func:`_mesh_file`) when the command
    line is read, before any data."""
    def check(value: str) -> str:
        try:
            _mesh_file(value, what)
        except QuintetError as exc:
            raise typer.BadParameter(str(exc)) from None
        return value
    return check


#: upper bound of a distribution's scale τ (the renderer's coordinates lie in [-1, 1])
MAX_TAU = 1e3


def _tau_option(default: float, help: str, name: str = "tau") -> Any:
    """A scale τ in (0, MAX_TAU]; refused where the option is read, in the words of the
    distribution's own check."""
    def parse(text: Any) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value <= MAX_TAU):
            raise typer.BadParameter(f"{name} must be a finite number > 0 and <= {MAX_TAU:g}, got {value!r}")
        return value
    return typer.Option(default, min=0, max=MAX_TAU, parser=parse, help=help)


@app.command("show")
def show_cmd(
    mesh: str = typer.Argument(..., callback=_found("mesh"),
                               help="Mesh file (OBJ, PLY, …) or a name under <data root>/meshes."),
    out: Path = options.output_file(Path("render.png"), "PNG to write (RGB and opacity side by side)."),
    dist: str = _dist_option("uniform"),
    tconorm: str = _tconorm_option("probabilistic"),
    p: Optional[float] = _p_option("T-conorm parameter (its default if omitted)."),
    tau: float = _tau_option(0.01, "Scale τ of the distribution (> 0)."),
    squared: bool = typer.Option(False, help="Use the squared distance (SoftRas' convention)."),
    size: int = typer.Option(256, min=8, max=2048, help="Image size in pixels."),
    elevation: float = typer.Option(30.0, min=-90, max=90, callback=options.finite, help="Camera elevation (degrees)."),
    azimuth: float = typer.Option(45.0, min=-360, max=360, callback=options.finite, help="Camera azimuth (degrees)."),
    distance: float = typer.Option(2.732, min=0.01, max=1000.0, callback=options.finite, help="Camera distance."),
    viewing_angle: float = typer.Option(30.0, min=1, max=89, callback=options.finite,
                                        help="Half viewing angle (degrees)."),
    normalize: bool = typer.Option(True, help="Centre the mesh and scale it into [-1, 1]."),
    threads: int = typer.Option(1, min=1, max=64, help="torch threads."),
) -> None:
    """Render a mesh with one GenDR instance (lit, softmax colour blend) to a PNG."""
    import torch

    from quintet.core.io import atomic_write
    from quintet.core.plotting import plt
    from quintet.render.camera import project
    from quintet.render.mesh import load_mesh
    from quintet.render.rasterize import RenderSettings, render
    from quintet.render.shading import lighting

    _threads(threads)
    settings = RenderSettings(image_size=size, dist=dist, tau=tau, squared=squared, tconorm=tconorm, p=p,
                              background=(1.0, 1.0, 1.0), near=0.1)
    m = load_mesh(_mesh_file(mesh), normalize=normalize)
    world = m.face_vertices()
    screen = m.face_vertices(project(m.vertices, distance, elevation, azimuth, viewing_angle))
    with torch.no_grad():
        rgba = render(screen, settings, lighting(world, m.face_textures()[None]))[0]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(rgba[:3].permute(1, 2, 0).clamp(0, 1).numpy())
    axes[1].imshow(rgba[3].numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("colour (softmax blend)")
    axes[1].set_title(f"opacity: {dist} τ={tau:g}, {settings.tconorm}")
    for ax in axes:
        ax.axis("off")
    with atomic_write(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    typer.echo(f"{m.num_faces} faces -> {out}")


@app.command("fit-pose")
def fit_pose_cmd(
    mesh: str = typer.Argument("teapot", callback=_found("mesh"), help="Mesh file or a name under <data root>/meshes."),
    dist: str = _dist_option("logistic"),
    tconorm: str = _tconorm_option("probabilistic"),
    p: Optional[float] = _p_option("T-conorm parameter."),
    squared: bool = typer.Option(True, help="Squared distances (as the paper's pose experiment)."),
    tau_start: float = _tau_option(1e-3, "τ at the first step (annealed log-linearly; > 0).", "tau_start"),
    tau_end: float = _tau_option(1e-7, "τ at the last step (> 0).", "tau_end"),
    poses: int = typer.Option(4, min=1, max=1000, help="Number of random target poses."),
    steps: int = typer.Option(120, min=1, max=100000, help="Adam steps."),
    size: int = typer.Option(32, min=8, max=512, help="Image size."),
    lr: float = typer.Option(1.25, min=1e-6, max=100.0, help="Adam learning rate at the first step."),
    lr_end: float = typer.Option(0.05, min=1e-6, max=100.0, help="Learning rate at the last step (log-linear)."),
    angle_min: float = typer.Option(15.0, min=0, max=180, help="Smallest initial angular error (degrees)."),
    angle_max: float = typer.Option(35.0, min=0, max=180, help="Largest initial angular error (degrees)."),
    seed: int = options.seed(),
    threads: int = typer.Option(1, min=1, max=64),
) -> None:
    """Recover random camera poses from silhouettes; prints the success rate (error < 5°)."""
    from quintet.render.experiments import PoseConfig, fit_pose
    from quintet.render.mesh import load_mesh

    _threads(threads)
    cfg = PoseConfig(dist=dist, tconorm=tconorm, p=p, squared=squared, tau_start=tau_start, tau_end=tau_end,
                     poses=poses, steps=steps, image_size=size, lr=lr, lr_end=lr_end, angle_min=angle_min, angle_max=angle_max,
                     seed=seed)
    result = fit_pose(load_mesh(_mesh_file(mesh), normalize=False), cfg, log=typer.echo)
    if not current().is_main:
        return
    typer.echo(json.dumps({k: result[k] for k in ("success_rate", "median_error_deg", "final_error_deg")}))


@app.command("fit-shape")
def fit_shape_cmd(
    target: str = typer.Argument("airplane", callback=_found("target mesh"),
                                 help="Target mesh file or a name under <data root>/meshes."),
    template: str = typer.Option("sphere_642", callback=_found("template"),
                                 help="Template mesh (its vertices must lie inside (-1, 1))."),
    dist: str = _dist_option("uniform"),
    tconorm: str = _tconorm_option("probabilistic"),
    p: Optional[float] = _p_option("T-conorm parameter."),
    tau: float = _tau_option(0.01, "Scale τ (> 0)."),
    squared: bool = typer.Option(False, help="Squared distances."),
    elevation: float = typer.Option(30.0, min=-90, max=90, callback=options.finite,
                                    help="Elevation ring of cameras.npy (-60, -30, 0, 30, 60)."),
    steps: int = typer.Option(100, min=1, max=100000),
    size: int = typer.Option(64, min=8, max=512),
    lr: float = typer.Option(0.05, min=1e-6, max=10.0),
    out: Optional[Path] = options.output_file(None, "Write the fitted mesh here (OBJ).", (".obj",)),
    seed: int = options.seed(),
    threads: int = typer.Option(1, min=1, max=64),
) -> None:
    """Deform a sphere template to a mesh's 24 silhouettes of one elevation ring; prints the IoU."""
    import numpy as np

    from quintet.render.experiments import ShapeConfig, fit_shape, ring_cameras
    from quintet.render.mesh import load_mesh

    _threads(threads)
    cfg = ShapeConfig(dist=dist, tconorm=tconorm, p=p, tau=tau, squared=squared, steps=steps, image_size=size,
                      lr=lr, seed=seed)
    cameras = ring_cameras(np.load(_mesh_file("cameras.npy", "camera file"), allow_pickle=False), elevation)
    template_mesh = load_mesh(_mesh_file(template, "template"))
    if template_mesh.vertices.abs().max() > 1:
        raise QuintetError("the template's vertices must lie inside [-1, 1]³ (its parameterisation needs it)")
    result = fit_shape(template_mesh, load_mesh(_mesh_file(target)), cameras, cfg, log=typer.echo)
    if not current().is_main:
        return
    if out is not None:
        import trimesh

        from quintet.core.io import atomic_write

        fitted = trimesh.Trimesh(result["vertices"].numpy(), template_mesh.faces.numpy(), process=False)
        with atomic_write(out, "w") as handle:
            handle.write(fitted.export(file_type="obj"))
        typer.echo(f"wrote {out}")
    typer.echo(json.dumps({"iou": result["iou"], "best_iou": result["best_iou"]}))


# ------------------------------------------------------------------ reproduce / demo
def reproduce(out: Path, quick: bool = True, seed: int = 0) -> dict:
    """Pose recovery and shape fitting on the paper's meshes; writes results.json/.md and PNGs."""
    from quintet.render.reproduce import run_reproduction

    return run_reproduction(Path(out), quick=quick, seed=seed, log=typer.echo)


def demo(run) -> str:
    """A few seconds: the distributions' CDFs and the teapot under three renderers."""
    from quintet.render.reproduce import demo_section

    return demo_section(run)
