"""The paper's optimisation experiments: camera pose recovery and silhouette shape fitting.

Pose (GenDR Sec. 5.1, the authors' ``opt_camera.py`` protocol): the teapot is seen from a random
target pose; a second camera starts 15–35°, 35–55° or 55–75° away in (elevation, azimuth) with a
random distance and viewing angle, and Adam fits it to the target silhouette under an IoU loss
while τ is annealed log-linearly; a pose is recovered when its angular error is below 5°.

Shape (the authors' ``opt_shape.py``): a 642-vertex sphere is deformed to match the 24 silhouettes
of one elevation ring of a mesh; the IoU of the final hard silhouettes measures the fit.

Under ``accelerate launch`` the pose fit gives each process its share of the (independent) poses,
and the shape fit its share of the views, with gradients averaged; metrics are computed on the
gathered results, so both equal a one-process run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError
from quintet.render.camera import get_points_from_angles, look_at, perspective
from quintet.render.mesh import Mesh
from quintet.render.rasterize import RenderSettings, render
from quintet.render.shading import flatten_loss, laplacian_loss

ANGLE_RANGES: tuple[tuple[float, float], ...] = ((15.0, 35.0), (35.0, 55.0), (55.0, 75.0))
SUCCESS_DEGREES = 5.0


def iou_loss(predict: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − IoU`` of soft silhouettes per batch item, ``(B,)``."""
    dims = tuple(range(1, predict.dim()))
    intersect = (predict * target).sum(dims)
    union = (predict + target - predict * target).sum(dims) + 1e-6
    return 1 - intersect / union


def hard_silhouette(face_vertices: torch.Tensor, image_size: int) -> torch.Tensor:
    """Binary silhouettes ``(B, S, S)`` (Heaviside coverage, max T-conorm)."""
    settings = RenderSettings(image_size=image_size, dist="hard", tau=1.0, tconorm="max", blend="none")
    return render(face_vertices, settings)


def _at_least_one(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise QuintetError(f"{name} must be >= 1, got {getattr(cfg, name)}")


# ------------------------------------------------------------------------------------------ pose
@dataclass(frozen=True)
class PoseConfig:
    """One pose-recovery run: ``poses`` targets per angle range, ``steps`` Adam steps.

    ``lr_end`` (default: ``lr``, constant as in the paper) decays the learning rate log-linearly
    alongside τ; short schedules need it, since Adam turns the tiny gradients at small τ into full steps.
    """

    dist: str = "logistic"
    tconorm: str = "probabilistic"
    p: Optional[float] = None
    squared: bool = True
    shape: float = 2.0
    shift: float = 0.0
    tau_start: float = 1e-1
    tau_end: float = 1e-7
    poses: int = 8
    steps: int = 200
    image_size: int = 64
    lr: float = 0.3
    lr_end: Optional[float] = None
    angle_min: float = 15.0
    angle_max: float = 35.0
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least_one(self, "poses", "steps", "image_size")
        if not (0 <= self.angle_min <= self.angle_max <= 180):
            raise QuintetError(f"need 0 <= angle_min <= angle_max <= 180, got {self.angle_min}, {self.angle_max}")
        if not (self.lr > 0 and (self.lr_end is None or self.lr_end > 0)):
            raise QuintetError(f"lr and lr_end must be > 0, got {self.lr}, {self.lr_end}")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise QuintetError(f"tau_start and tau_end must be > 0, got {self.tau_start}, {self.tau_end}")
        self.settings(self.tau_start)  # validates distribution, T-conorm and parameters

    def settings(self, tau: float) -> RenderSettings:
        return RenderSettings(image_size=self.image_size, dist=self.dist, tau=float(tau), squared=self.squared,
                              shape=self.shape, shift=self.shift, tconorm=self.tconorm, p=self.p, blend="none")


def pose_screen_vertices(vertices: torch.Tensor, poses: torch.Tensor, rotation_of: Optional[torch.Tensor] = None):
    """Screen vertices ``(B, V, 3)`` for poses ``(B, 4)`` = (distance, elevation°, azimuth°, view angle°).

    ``rotation_of`` (target poses) first rotates the mesh so that pose (d, 0, 0, ·) sees it as
    the target camera did: the recovered pose is then the angular error itself.
    """
    v = vertices[None].expand(poses.shape[0], -1, -1)
    if rotation_of is not None:
        eye = get_points_from_angles(rotation_of[:, 0], rotation_of[:, 1], rotation_of[:, 2])
        v = look_at(v, eye, only_rotate=True)
    eye = get_points_from_angles(poses[:, 0], poses[:, 1], poses[:, 2])
    return perspective(look_at(v, eye), poses[:, 3])


def _initial_poses(count: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    poses = torch.zeros(count, 4)
    poses[:, 0] = 2.0 + torch.rand(count, generator=generator) * 8.0
    direction = torch.randn(count, 2, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    magnitude = lo + torch.rand(count, generator=generator) * (hi - lo)
    poses[:, 1:3] = direction * magnitude[:, None]
    poses[:, 3] = 10.0 + torch.rand(count, generator=generator) * 20.0
    return poses


def target_poses(count: int, seed: int) -> torch.Tensor:
    """Random target poses as the authors draw them: distance 2.5–4, N(0, 60°) angles, view 20°."""
    g = torch.Generator().manual_seed(seed + 1)
    poses = torch.zeros(count, 4)
    poses[:, 0] = 2.5 + torch.rand(count, generator=g) * 1.5
    poses[:, 1] = torch.randn(count, generator=g) * 60
    poses[:, 2] = torch.randn(count, generator=g) * 60
    poses[:, 3] = 20.0
    return poses


def angular_error(poses: torch.Tensor) -> torch.Tensor:
    """Angular distance (degrees) of recovered (elevation, azimuth) from the target, ``(B,)``."""
    return poses[:, 1:3].norm(dim=-1)


def fit_pose(
    mesh: Mesh, cfg: PoseConfig, record_every: int = 0, log: Optional[Callable[[str], None]] = None
) -> dict:
    """Recover ``cfg.poses`` random camera poses from their hard silhouettes; returns the metrics.

    With ``record_every > 0`` the result also holds ``trajectory``: poses and silhouettes of the
    first pose every that many steps (for figures).
    """
    dist = current()
    dist.check_batch(cfg.poses, "number of poses")
    log = dist.main_only(log) if log else None
    # every process draws all poses and fits its own share of them (each pose is independent)
    targets = dist.shard(target_poses(cfg.poses, cfg.seed))
    with torch.no_grad():
        goal = hard_silhouette(mesh.face_vertices(pose_screen_vertices(mesh.vertices, targets)), cfg.image_size)
    g = torch.Generator().manual_seed(cfg.seed)
    initial = _initial_poses(cfg.poses, cfg.angle_min, cfg.angle_max, g)
    initial_error = angular_error(initial)
    poses = torch.nn.Parameter(dist.shard(initial).clone())
    optim = torch.optim.Adam([poses], lr=cfg.lr, betas=(0.5, 0.99))
    taus = np.logspace(math.log10(cfg.tau_start), math.log10(cfg.tau_end), cfg.steps)
    lrs = np.logspace(math.log10(cfg.lr), math.log10(cfg.lr_end or cfg.lr), cfg.steps)
    trajectory = []
    for step, (tau, lr) in enumerate(zip(taus, lrs)):
        for group in optim.param_groups:
            group["lr"] = float(lr)
        screen = pose_screen_vertices(mesh.vertices, poses, rotation_of=targets)
        pred = render(mesh.face_vertices(screen), cfg.settings(tau))
        loss = iou_loss(pred, goal).sum()
        if record_every and step % record_every == 0:
            trajectory.append({"step": step, "tau": float(tau), "pose": poses.detach()[0].tolist(),
                               "silhouette": pred.detach()[0].clone()})
        optim.zero_grad()
        loss.backward()
        optim.step()
        if dist.any(not bool(torch.isfinite(poses).all())):
            if log:
                log(f"non-finite pose at step {step}; stopping")
            break
        if log and (step % 50 == 0 or step == cfg.steps - 1):
            error = dist.gather(angular_error(poses.detach()), cfg.poses)
            log(f"step {step:4d} tau {tau:.1e} loss {float(dist.all_sum(loss.detach())):.4f} "
                f"success {float((error < SUCCESS_DEGREES).float().mean()):.2f}")
    error = dist.gather(angular_error(poses.detach()), cfg.poses)
    error = torch.where(torch.isfinite(error), error, torch.full_like(error, math.inf))
    result = {
        "config": asdict(cfg),
        "success_rate": float((error < SUCCESS_DEGREES).float().mean()),
        "median_error_deg": float(error.median()),
        "initial_error_deg": initial_error.tolist(),
        "final_error_deg": error.tolist(),
        "goal": goal[0],
    }
    if record_every:
        result["trajectory"] = trajectory
    return result


# ----------------------------------------------------------------------------------------- shape
@dataclass(frozen=True)
class ShapeConfig:
    """One shape fit: template deformed to ``views`` silhouettes at ``elevation`` (cameras.npy ring)."""

    dist: str = "uniform"
    tau: float = 1e-2
    squared: bool = False
    tconorm: str = "probabilistic"
    p: Optional[float] = None
    shape: float = 2.0
    shift: float = 0.0
    steps: int = 100
    image_size: int = 64
    lr: float = 0.05
    viewing_angle: float = 15.0
    laplacian_weight: float = 0.03
    flatten_weight: float = 0.0003
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least_one(self, "steps", "image_size")
        if not (0 < self.viewing_angle < 90):
            raise QuintetError(f"viewing_angle must lie in (0, 90) degrees, got {self.viewing_angle}")
        self.settings()

    def settings(self) -> RenderSettings:
        return RenderSettings(image_size=self.image_size, dist=self.dist, tau=self.tau, squared=self.squared,
                              shape=self.shape, shift=self.shift, tconorm=self.tconorm, p=self.p, blend="none")


class SphereDeformation(torch.nn.Module):
    """The template deformation of the authors' shape experiment: per-vertex displacement in a
    sigmoid parameterisation that keeps the shape inside [-1, 1]³, plus a moving centre."""

    def __init__(self, template: Mesh):
        super().__init__()
        self.register_buffer("base_vertices", template.vertices * 0.5)
        self.register_buffer("faces", template.faces)
        self.displace = torch.nn.Parameter(torch.zeros_like(self.base_vertices))
        self.center = torch.nn.Parameter(torch.zeros(1, 3))

    def forward(self) -> torch.Tensor:
        base = torch.log(self.base_vertices.abs() / (1 - self.base_vertices.abs()))
        centroid = torch.tanh(self.center)
        v = torch.sigmoid(base + self.displace) * torch.sign(self.base_vertices)
        v = torch.relu(v) * (1 - centroid) - torch.relu(-v) * (centroid + 1)
        return v + centroid


def ring_cameras(cameras: np.ndarray, elevation: float) -> torch.Tensor:
    """Rows of ``cameras: (N, 3)`` (distance, elevation, azimuth) at one elevation."""
    rows = cameras[np.isclose(cameras[:, 1], elevation)]
    if len(rows) == 0:
        raise QuintetError(f"no camera at elevation {elevation}; available: {sorted(set(cameras[:, 1].tolist()))}")
    return torch.as_tensor(rows, dtype=torch.float32)


def ring_screen(vertices: torch.Tensor, cameras: torch.Tensor, viewing_angle: float) -> torch.Tensor:
    """Screen vertices ``(N, V, 3)`` of ``vertices: (V, 3)`` seen from ``cameras: (N, 3)``."""
    eye = get_points_from_angles(cameras[:, 0], cameras[:, 1], cameras[:, 2]).to(vertices)
    return perspective(look_at(vertices[None].expand(cameras.shape[0], -1, -1), eye), viewing_angle)


def silhouette_iou(a: torch.Tensor, b: torch.Tensor, dist: Dist = Dist(), views: int | None = None) -> float:
    """Mean IoU of binary silhouettes ``(B, S, S)``; with ``dist``, of the ``views`` silhouettes
    whose shards the processes hold."""
    return float(dist.gather(1 - iou_loss(a, b), views or len(a)).mean())


def fit_shape(
    template: Mesh, target: Mesh, cameras: torch.Tensor, cfg: ShapeConfig,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """Deform ``template`` to ``target``'s silhouettes from ``cameras: (N, 3)``; returns IoU and vertices."""
    torch.manual_seed(cfg.seed)
    dist = current()
    views = len(cameras)
    dist.check_batch(views, "number of views")
    log = dist.main_only(log) if log else None
    with torch.no_grad():
        goal = hard_silhouette(target.face_vertices(ring_screen(target.vertices, cameras, cfg.viewing_angle)),
                               cfg.image_size)
    mine, my_goal = dist.shard(cameras, goal)  # this process's views
    model = SphereDeformation(template)
    dist.broadcast_parameters(model)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.95))
    settings = cfg.settings()
    best = 0.0
    for step in range(cfg.steps):
        vertices = model()
        screen = template.face_vertices(ring_screen(vertices, mine, cfg.viewing_angle))
        pred = render(screen, settings)
        # the regularisers enter every process's loss once, so the averaged gradient holds them once
        loss = (iou_loss(pred, my_goal).mean() * dist.weight(views)
                + cfg.laplacian_weight * laplacian_loss(vertices, template.faces)
                + cfg.flatten_weight * flatten_loss(vertices, template.faces))
        with torch.no_grad():
            best = max(best, silhouette_iou(hard_silhouette(screen, cfg.image_size), my_goal, dist, views))
        optim.zero_grad()
        loss.backward()
        dist.sync_gradients(model.parameters())
        optim.step()
        if log and (step % 25 == 0 or step == cfg.steps - 1):
            log(f"step {step:4d} loss {float(dist.all_sum(loss.detach())) / dist.world:.4f} best hard IoU {best:.4f}")
    with torch.no_grad():
        vertices = model()
        final = silhouette_iou(
            hard_silhouette(template.face_vertices(ring_screen(vertices, mine, cfg.viewing_angle)), cfg.image_size),
            my_goal, dist, views)
    return {"config": asdict(cfg), "iou": final, "best_iou": max(best, final), "vertices": vertices, "goal": goal}


def with_tau(cfg: ShapeConfig, tau: float) -> ShapeConfig:
    """``cfg`` with another τ (for sweeps)."""
    return replace(cfg, tau=float(tau))
