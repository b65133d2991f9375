"""Cameras with the conventions of SoftRas / GenDR: ``look_at`` (up = +y), ``look``, perspective
projection by a viewing angle, eyes from (distance, elevation, azimuth) in degrees.

After projection x, y lie in screen space [-1, 1] (y up, so image row 0 is y = +1) and z is the
depth along the viewing direction.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F

Vector = Union[Sequence[float], torch.Tensor]


def _as_batch(value: Vector, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t[None].expand(like.shape[0], 3) if t.dim() == 1 else t


def get_points_from_angles(
    distance: Union[float, torch.Tensor], elevation: Union[float, torch.Tensor], azimuth: Union[float, torch.Tensor]
) -> torch.Tensor:
    """Camera positions ``(…, 3)`` on a sphere: elevation and azimuth in degrees, azimuth 0 at -z."""
    distance, elevation, azimuth = (torch.as_tensor(x, dtype=torch.get_default_dtype()) if not torch.is_tensor(x) else x
                                    for x in (distance, elevation, azimuth))
    elev, azim = elevation * (math.pi / 180), azimuth * (math.pi / 180)
    return torch.stack(
        [distance * torch.cos(elev) * torch.sin(azim), distance * torch.sin(elev),
         -distance * torch.cos(elev) * torch.cos(azim)],
        dim=-1,
    )


def _rotate(vertices: torch.Tensor, z_axis: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    z_axis = F.normalize(z_axis, eps=1e-5, dim=-1)
    x_axis = F.normalize(torch.cross(up, z_axis, dim=-1), eps=1e-5, dim=-1)
    y_axis = F.normalize(torch.cross(z_axis, x_axis, dim=-1), eps=1e-5, dim=-1)
    rotation = torch.stack([x_axis, y_axis, z_axis], dim=1)  # (B, 3, 3), rows are the camera axes
    return vertices @ rotation.transpose(1, 2)


def look_at(
    vertices: torch.Tensor, eye: Vector, at: Vector = (0.0, 0.0, 0.0), up: Vector = (0.0, 1.0, 0.0),
    only_rotate: bool = False,
) -> torch.Tensor:
    """Camera coordinates of ``vertices: (B, V, 3)`` seen from ``eye: (3,) | (B, 3)`` towards ``at``."""
    eye, at, up = (_as_batch(x, vertices) for x in (eye, at, up))
    shifted = vertices if only_rotate else vertices - eye[:, None, :]
    return _rotate(shifted, at - eye, up)


def look(vertices: torch.Tensor, eye: Vector, direction: Vector = (0.0, 0.0, 1.0),
         up: Vector = (0.0, 1.0, 0.0)) -> torch.Tensor:
    """Camera coordinates of ``vertices: (B, V, 3)`` seen from ``eye`` along ``direction``."""
    eye, direction, up = (_as_batch(x, vertices) for x in (eye, direction, up))
    return _rotate(vertices - eye[:, None, :], direction, up)


def perspective(vertices: torch.Tensor, angle: Union[float, torch.Tensor] = 30.0) -> torch.Tensor:
    """Perspective division with half viewing angle ``angle`` (degrees; scalar or ``(B,)``)."""
    angle = torch.as_tensor(angle, dtype=vertices.dtype, device=vertices.device)
    width = torch.tan(angle * (math.pi / 180))
    width = width[:, None] if width.dim() == 1 else width
    z = vertices[..., 2]
    return torch.stack([vertices[..., 0] / z / width, vertices[..., 1] / z / width, z], dim=-1)


def project(
    vertices: torch.Tensor, distance: Union[float, torch.Tensor] = 2.732, elevation: Union[float, torch.Tensor] = 30.0,
    azimuth: Union[float, torch.Tensor] = 0.0, viewing_angle: Union[float, torch.Tensor] = 30.0,
) -> torch.Tensor:
    """Screen-space vertices ``(B, V, 3)``: a look-at camera at (distance, elevation, azimuth)."""
    eye = get_points_from_angles(distance, elevation, azimuth).to(vertices)
    if vertices.dim() == 2:
        vertices = vertices[None].expand(eye.shape[0] if eye.dim() == 2 else 1, -1, -1)
    return perspective(look_at(vertices, eye), viewing_angle)
