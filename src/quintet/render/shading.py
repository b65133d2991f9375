"""Lighting of face colours (ambient + directional, as SoftRas and GenDR) and the Laplacian and
flatten mesh regularisers used for shape fitting (Kato et al. 2018; Liu et al. 2019)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def face_normals(face_vertices: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(B, F, 3)`` of world-space faces ``(B, F, 3, 3)``: (v2 − v1) × (v0 − v1)."""
    v0, v1, v2 = face_vertices.unbind(-2)
    return F.normalize(torch.cross(v2 - v1, v0 - v1, dim=-1), dim=-1, eps=1e-6)


def lighting(
    face_vertices: torch.Tensor,
    textures: torch.Tensor,
    ambient: float = 0.5,
    directional: float = 0.5,
    direction: Sequence[float] = (0.0, 1.0, 0.0),
    color: Sequence[float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """Lit corner colours ``(B, F, 3, 3)``: ``textures · (ambient + directional · max(0, n·l))``."""
    normals = face_normals(face_vertices)
    light_dir = torch.as_tensor(direction, dtype=normals.dtype, device=normals.device)
    light_color = torch.as_tensor(color, dtype=normals.dtype, device=normals.device)
    cosine = F.relu((normals * light_dir).sum(-1))  # (B, F)
    light = (ambient + directional * cosine)[..., None] * light_color  # (B, F, 3)
    return textures * light[..., None, :]


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """Unique undirected edges ``(E, 2)`` (smaller index first) of a triangle list ``(F, 3)``."""
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(-1).values
    return torch.unique(pairs, dim=0)


def laplacian_loss(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Uniform Laplacian smoothness ``Σᵥ ‖v − mean(neighbours)‖²`` per batch item, ``(B,)``."""
    edges = mesh_edges(faces)
    count = vertices.shape[-2]
    src = torch.cat([edges[:, 0], edges[:, 1]])
    dst = torch.cat([edges[:, 1], edges[:, 0]])
    degree = torch.zeros(count, dtype=vertices.dtype, device=vertices.device).index_add_(
        0, src, torch.ones_like(src, dtype=vertices.dtype))
    neighbour_sum = torch.zeros_like(vertices).index_add_(-2, src, vertices[..., dst, :])
    delta = vertices - neighbour_sum / degree.clamp_min(1)[:, None]
    return delta.pow(2).sum((-1, -2))


def _opposite_vertices(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each interior edge (v0, v1): the third vertices v2, v3 of its two faces."""
    corners = torch.cat([faces[:, [0, 1, 2]], faces[:, [1, 2, 0]], faces[:, [2, 0, 1]]])
    edge = corners[:, :2].sort(-1).values
    edge_id = edge[:, 0] * (int(faces.max()) + 1) + edge[:, 1]
    order = torch.argsort(edge_id, stable=True)
    edge_id, corners, edge = edge_id[order], corners[order], edge[order]
    first = torch.ones_like(edge_id, dtype=torch.bool)
    first[1:] = edge_id[1:] != edge_id[:-1]
    paired = first[:-1] & ~first[1:]  # an edge shared by exactly the next entry
    idx = torch.nonzero(paired).squeeze(-1)
    return edge[idx, 0], edge[idx, 1], corners[idx, 2], corners[idx + 1, 2]


def flatten_loss(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Flatness ``Σₑ (cos θₑ + 1)²`` over interior edges, θ the dihedral angle, ``(B,)``."""
    i0, i1, i2, i3 = _opposite_vertices(faces)
    v0, v1, v2, v3 = (vertices[..., i, :] for i in (i0, i1, i2, i3))
    axis = v1 - v0

    def normal_arm(v: torch.Tensor) -> torch.Tensor:
        rel = v - v0
        return rel - axis * ((rel * axis).sum(-1, keepdim=True) / ((axis * axis).sum(-1, keepdim=True) + eps))

    a, b = normal_arm(v2), normal_arm(v3)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)
    return (cos + 1).pow(2).sum(-1)
