"""The GenDR rasteriser: coverage of every (pixel, face) pair through a distribution, aggregated
by a T-conorm into opacity, and colours blended by SoftRas' depth-aware softmax or a z-buffer.

Two evaluations of the same function:

* :func:`render` bins every face into the pixels of its screen bounding box grown by the
  distribution's cut-off distance (the distance past which coverage is ``<= eps``), evaluates only
  those pairs, keeps the ones with coverage ``> eps`` and aggregates them per pixel;
* :func:`render_dense` evaluates all ``pixels × faces`` pairs by broadcasting (the reference).

Both zero every coverage ``<= eps``, so they agree to rounding. Input ``face_vertices: (B, F, 3, 3)``
are screen-space corners (x, y in [-1, 1], y up; z the depth), as :mod:`quintet.render.camera` makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from quintet.core.errors import QuintetError
from quintet.render.distributions import check_distribution, coverage, cutoff_distance
from quintet.render.tconorms import check_tconorm, tconorm

BLENDS = ("softmax", "hard", "none")


@dataclass(frozen=True)
class RenderSettings:
    """Everything that defines one GenDR instance (Petersen et al. 2022, Sec. 3).

    ``dist``/``tau``/``squared``/``shape``/``shift``: coverage ``F(s/τ)`` of signed distance s;
    ``tconorm``/``p``: opacity aggregation; ``blend``: colour by ``softmax`` (SoftRas, with
    ``gamma``, ``blend_eps``, ``near``, ``far``), ``hard`` (z-buffer) or ``none`` (opacity only);
    ``eps``: coverages ``<= eps`` count as 0 (sets the cut-off distance of the binning).
    """

    image_size: int = 64
    dist: str = "logistic"
    tau: float = 1e-4
    squared: bool = True
    shape: float = 2.0
    shift: float = 0.0
    tconorm: str = "probabilistic"
    p: Optional[float] = None
    eps: float = 1e-6
    blend: str = "softmax"
    gamma: float = 1e-4
    blend_eps: float = 1e-3
    near: float = 1.0
    far: float = 100.0
    double_side: bool = False
    background: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        if not (isinstance(self.image_size, int) and 1 <= self.image_size <= 4096):
            raise QuintetError(f"image_size must be an integer in [1, 4096], got {self.image_size!r}")
        check_distribution(self.dist, self.tau, self.shape, self.shift)
        object.__setattr__(self, "p", check_tconorm(self.tconorm, self.p))
        if not (0 <= self.eps < 0.5):
            raise QuintetError(f"eps must lie in [0, 0.5), got {self.eps!r}")
        if self.blend not in BLENDS:
            raise QuintetError(f"unknown blend {self.blend!r}; expected one of: {', '.join(BLENDS)}")
        if not (self.gamma > 0 and 0 < self.near < self.far):
            raise QuintetError(
                f"need gamma > 0 and 0 < near < far, got gamma={self.gamma}, near={self.near}, far={self.far}"
            )

    @property
    def cutoff(self) -> float:
        """Screen distance outside a face past which its coverage is ``<= eps``."""
        return cutoff_distance(self.dist, self.tau, self.squared, self.shape, self.shift, self.eps)


def pixel_centers(size: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``(size², 2)`` screen (x, y) of pixel centres, row-major, row 0 at the top (y = +1)."""
    step = (2 * torch.arange(size, dtype=dtype, device=device) + 1 - size) / size
    y, x = torch.meshgrid(-step, step, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def _edge(px, py, ax, ay, bx, by) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distance of p to segment a→b and the edge function (b − a) × (p − a)."""
    ex, ey, rx, ry = bx - ax, by - ay, px - ax, py - ay
    t = ((rx * ex + ry * ey) / (ex * ex + ey * ey).clamp_min(1e-30)).clamp(0, 1)
    dx, dy = rx - t * ex, ry - t * ey
    return dx * dx + dy * dy, ex * ry - ey * rx


def _distance_xy(px, py, xs, ys) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`signed_distance` on separate coordinate tensors (contiguous, fast on CPU)."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    d0, c0 = _edge(px, py, x0, y0, x1, y1)
    d1, c1 = _edge(px, py, x1, y1, x2, y2)
    d2, c2 = _edge(px, py, x2, y2, x0, y0)
    dist2 = torch.minimum(torch.minimum(d0, d1), d2)
    area2 = c0 + c1 + c2  # twice the signed area
    inside = (((c0 >= 0) & (c1 >= 0) & (c2 >= 0)) | ((c0 <= 0) & (c1 <= 0) & (c2 <= 0))) & (area2 != 0)
    positive = dist2 > 0
    dist = torch.where(positive, torch.where(positive, dist2, torch.ones_like(dist2)).sqrt(), torch.zeros_like(dist2))
    safe_area = torch.where(area2 != 0, area2, torch.ones_like(area2))
    bary = torch.stack([c1, c2, c0], dim=-1) / safe_area[..., None]  # v_k's weight: the edge opposite it
    return torch.where(inside, dist, -dist), bary


def signed_distance(points: torch.Tensor, corners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed Euclidean distance (inside > 0) and raw barycentric weights of 2D points to triangles.

    ``points: (..., 2)``, ``corners: (..., 3, 2)`` (broadcast) → ``(...)`` and ``(..., 3)``.
    Both windings count as inside (silhouettes are double-sided); degenerate triangles have none.
    """
    return _distance_xy(points[..., 0], points[..., 1], corners[..., 0].unbind(-1), corners[..., 1].unbind(-1))


def _clip_barycentric(bary: torch.Tensor) -> torch.Tensor:
    clipped = bary.clamp(0, 1)
    return clipped / clipped.sum(-1, keepdim=True).clamp_min(1e-5)


def _pair_terms(px, py, xs, ys, zs, s: RenderSettings, coverage_only: bool = False) -> dict[str, torch.Tensor]:
    """Coverage, inside flag, perspective-correct depth and clipped barycentrics of point/face pairs.

    ``px, py``: pixel coordinates, ``xs, ys, zs``: three tensors each (corner coordinates), broadcast.
    """
    sd, bary = _distance_xy(px, py, xs, ys)
    cov = coverage(sd, s.dist, s.tau, s.squared, s.shape, s.shift)
    cov = torch.where(cov > s.eps, cov, torch.zeros_like(cov))
    terms = {"coverage": cov}
    if s.blend != "none" and not coverage_only:
        w = _clip_barycentric(bary)
        z = torch.stack(torch.broadcast_tensors(*zs), dim=-1)
        safe_z = torch.where(z != 0, z, torch.ones_like(z))
        inv = (w / safe_z).sum(-1)
        terms["depth"] = 1 / torch.where(inv != 0, inv, torch.full_like(inv, 1e-30))
        terms["bary"] = w
        terms["inside"] = (bary >= 0).all(-1) & (bary <= 1).all(-1)
    return terms


def _front_facing(corners: torch.Tensor) -> torch.Tensor:
    """Faces whose screen winding is counter-clockwise (SoftRas' front side)."""
    v0, v1, v2 = corners[..., 0, :2], corners[..., 1, :2], corners[..., 2, :2]
    return (v2[..., 1] - v0[..., 1]) * (v1[..., 0] - v0[..., 0]) < (v1[..., 1] - v0[..., 1]) * (v2[..., 0] - v0[..., 0])


def _blend(terms: dict[str, torch.Tensor], colors: torch.Tensor, front: torch.Tensor, s: RenderSettings) -> torch.Tensor:
    """RGB ``(R, 3)`` of R pixels from padded pair terms ``(R, K)`` and corner colours ``(R, K, 3, 3)``."""
    cov, depth = terms["coverage"], terms["depth"]
    color = (terms["bary"][..., None] * colors).sum(-2)  # (R, K, 3)
    valid = (cov > 0) & (depth >= s.near) & (depth <= s.far) & (front | s.double_side)
    background = torch.as_tensor(s.background, dtype=cov.dtype, device=cov.device)
    if s.blend == "hard":
        hit = valid & terms["inside"]
        masked = torch.where(hit, depth, torch.full_like(depth, math.inf))
        best = masked.argmin(-1, keepdim=True)
        chosen = color.gather(-2, best[..., None].expand(-1, -1, 3)).squeeze(-2)
        return torch.where(hit.any(-1, keepdim=True), chosen, background)
    znorm = (s.far - depth) / (s.far - s.near)
    znorm = torch.where(valid, znorm, torch.full_like(znorm, -math.inf))
    top = torch.maximum(znorm.detach().amax(-1), torch.full_like(znorm[..., 0], s.blend_eps))
    weight = torch.where(valid, cov * torch.exp((znorm - top[..., None]) / s.gamma), torch.zeros_like(cov))
    weight_bg = torch.exp((s.blend_eps - top) / s.gamma)
    total = weight.sum(-1) + weight_bg
    return ((weight[..., None] * color).sum(-2) + weight_bg[..., None] * background) / total[..., None]


def _check_inputs(face_vertices: torch.Tensor, textures: Optional[torch.Tensor]) -> None:
    if face_vertices.dim() != 4 or face_vertices.shape[-2:] != (3, 3):
        raise QuintetError(f"face_vertices must have shape (B, F, 3, 3), got {tuple(face_vertices.shape)}")
    if not torch.isfinite(face_vertices).all():
        raise QuintetError("face_vertices contain NaN or infinite coordinates")
    if textures is not None and (textures.shape[-2:] != (3, 3) or textures.shape[-3] != face_vertices.shape[1]):
        raise QuintetError(
            f"textures must have shape (F, 3, 3) or (B, F, 3, 3) with F={face_vertices.shape[1]}, got {tuple(textures.shape)}"
        )


def _output(alpha: torch.Tensor, rgb: Optional[torch.Tensor], batch: int, size: int) -> torch.Tensor:
    alpha = alpha.reshape(batch, 1, size, size)
    if rgb is None:
        return alpha[:, 0]
    return torch.cat([rgb.reshape(batch, size, size, 3).permute(0, 3, 1, 2), alpha], dim=1)


def _textures(textures: Optional[torch.Tensor], face_vertices: torch.Tensor) -> torch.Tensor:
    if textures is None:
        return torch.ones_like(face_vertices)
    return textures.expand_as(face_vertices) if textures.dim() == 3 else textures


def render_dense(
    face_vertices: torch.Tensor, settings: RenderSettings, textures: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Reference GenDR: every pixel × face pair by broadcasting (memory ``B·S²·F``).

    Returns the opacity ``(B, S, S)`` when ``settings.blend == 'none'``, else RGBA ``(B, 4, S, S)``.
    """
    _check_inputs(face_vertices, textures)
    s, (batch, faces) = settings, face_vertices.shape[:2]
    points = pixel_centers(s.image_size, face_vertices.dtype, face_vertices.device)
    corners = face_vertices[:, None]  # (B, 1, F, 3, 3)
    xs, ys, zs = (corners[..., k].unbind(-1) for k in range(3))
    terms = _pair_terms(points[None, :, None, 0], points[None, :, None, 1], xs, ys, zs, s)  # (B, P, F)
    alpha = tconorm(terms["coverage"], s.tconorm, s.p, dim=-1)
    rgb = None
    if s.blend != "none":
        pixels = points.shape[0]
        flat = {k: v.reshape(batch * pixels, faces, *v.shape[3:]) for k, v in terms.items()}
        colors = _textures(textures, face_vertices)[:, None].expand(-1, pixels, -1, -1, -1)
        front = _front_facing(face_vertices)[:, None].expand(-1, pixels, -1)
        rgb = _blend(flat, colors.reshape(batch * pixels, faces, 3, 3), front.reshape(batch * pixels, faces), s)
    return _output(alpha, rgb, batch, s.image_size)


def _candidate_pairs(xy: torch.Tensor, size: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(face index into B·F, pixel index into B·S²) of every pixel in each face's grown bounding box."""
    batch, faces = xy.shape[:2]
    lo = xy.amin(-2) - radius  # (B, F, 2)
    hi = xy.amax(-2) + radius
    half = (size - 1) / 2
    col_lo = torch.ceil(lo[..., 0] * size / 2 + half).clamp(0, size)
    col_hi = torch.floor(hi[..., 0] * size / 2 + half).clamp(-1, size - 1)
    row_lo = torch.ceil(half - hi[..., 1] * size / 2).clamp(0, size)
    row_hi = torch.floor(half - lo[..., 1] * size / 2).clamp(-1, size - 1)
    ncols = (col_hi - col_lo + 1).clamp_min(0).long().reshape(-1)
    nrows = (row_hi - row_lo + 1).clamp_min(0).long().reshape(-1)
    counts = ncols * nrows
    face = torch.repeat_interleave(torch.arange(batch * faces, device=xy.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(face.numel(), device=xy.device) - starts[face]
    row = row_lo.reshape(-1).long()[face] + offset // ncols[face]
    col = col_lo.reshape(-1).long()[face] + offset % ncols[face]
    pixel = (face // faces) * size * size + row * size + col
    return face, pixel


def _group(pixel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Sort pairs by pixel: (order, unique pixels, row of each sorted pair, its slot, max slots)."""
    pixel_sorted, order = torch.sort(pixel, stable=True)
    unique, counts = torch.unique_consecutive(pixel_sorted, return_counts=True)
    row = torch.repeat_interleave(torch.arange(unique.numel(), device=pixel.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(pixel.numel(), device=pixel.device) - starts[row]
    return order, unique, row, slot, int(counts.max()) if counts.numel() else 0


def _scatter(values: torch.Tensor, row: torch.Tensor, slot: torch.Tensor, rows: int, slots: int, fill=0.0):
    out = values.new_full((rows, slots, *values.shape[1:]), fill)
    return out.index_put((row, slot), values)


def render(
    face_vertices: torch.Tensor, settings: RenderSettings, textures: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """GenDR with faces binned into the pixels they can reach (same result as :func:`render_dense`).

    ``face_vertices: (B, F, 3, 3)`` screen space; ``textures: (F, 3, 3)`` or ``(B, F, 3, 3)`` corner
    colours. Returns opacity ``(B, S, S)`` for ``blend='none'``, else RGBA ``(B, 4, S, S)``.
    """
    _check_inputs(face_vertices, textures)
    s, (batch, faces) = settings, face_vertices.shape[:2]
    size = s.image_size
    radius = min(s.cutoff, 4.0)  # beyond 4 the grown box already spans the whole screen
    flat_faces = face_vertices.reshape(batch * faces, 3, 3)
    columns = [flat_faces[:, j, k].contiguous() for k in range(3) for j in range(3)]  # x0 x1 x2 y0 … z2

    def pairs(face: torch.Tensor, pixel: torch.Tensor, coverage_only: bool = False) -> dict[str, torch.Tensor]:
        local = pixel % (size * size)
        px = (2 * (local % size) + 1 - size).to(face_vertices.dtype) / size
        py = (size - 1 - 2 * (local // size)).to(face_vertices.dtype) / size
        gathered = [c[face] for c in columns]
        return _pair_terms(px, py, gathered[0:3], gathered[3:6], gathered[6:9], s, coverage_only)

    with torch.no_grad():
        face, pixel = _candidate_pairs(face_vertices[..., :2], size, radius)
        keep = pairs(face, pixel, coverage_only=True)["coverage"] > 0
        face, pixel = face[keep], pixel[keep]
        order, unique, row, slot, slots = _group(pixel)
        face, pixel = face[order], pixel[order]
    terms = pairs(face, pixel)
    padded = {k: _scatter(v, row, slot, unique.numel(), slots) for k, v in terms.items()}
    alpha = face_vertices.new_zeros(batch * size * size).index_put((unique,), tconorm(padded["coverage"], s.tconorm, s.p))
    rgb = None
    if s.blend != "none":
        colors = _scatter(_textures(textures, face_vertices).reshape(batch * faces, 3, 3)[face], row, slot,
                          unique.numel(), slots)
        front = _scatter(_front_facing(flat_faces)[face], row, slot, unique.numel(), slots, fill=False)
        background = torch.as_tensor(s.background, dtype=face_vertices.dtype, device=face_vertices.device)
        rgb = background.expand(batch * size * size, 3).index_put((unique,), _blend(padded, colors, front, s))
    return _output(alpha, rgb, batch, size)
