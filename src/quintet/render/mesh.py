"""Triangle meshes: loading (Wavefront OBJ, PLY, … through trimesh), checks, face-vertex tensors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from quintet.core.errors import QuintetError


@dataclass
class Mesh:
    """A triangle mesh: ``vertices: (V, 3)`` float, ``faces: (F, 3)`` long, optional colours.

    ``face_colors: (F, 3)`` or ``vertex_colors: (V, 3)`` in [0, 1]; without either the mesh is white.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    face_colors: Optional[torch.Tensor] = None
    vertex_colors: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        check_mesh(self.vertices, self.faces)

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def face_vertices(self, vertices: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, F, 3, 3)`` corner positions of every face (``vertices`` overrides, ``(B, V, 3)``)."""
        v = self.vertices if vertices is None else vertices
        return face_vertices(v if v.dim() == 3 else v[None], self.faces)

    def face_textures(self) -> torch.Tensor:
        """``(F, 3, 3)`` corner colours: per-vertex colours, per-face colours repeated, or white."""
        if self.vertex_colors is not None:
            return self.vertex_colors[self.faces]
        if self.face_colors is not None:
            return self.face_colors[:, None, :].expand(-1, 3, -1)
        return torch.ones(self.num_faces, 3, 3, dtype=self.vertices.dtype, device=self.vertices.device)


def check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    """Raise :class:`QuintetError` for a mesh that cannot be rendered."""
    if vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise QuintetError(f"vertices must have shape (V, 3), got {tuple(vertices.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise QuintetError(f"faces must have shape (F, 3) (triangles), got {tuple(faces.shape)}")
    if faces.shape[0] == 0:
        raise QuintetError("the mesh has no faces; expected at least one triangle")
    if not torch.isfinite(vertices).all():
        bad = int((~torch.isfinite(vertices)).any(-1).sum())
        raise QuintetError(f"the mesh has {bad} vertices with NaN or infinite coordinates")
    if faces.min() < 0 or faces.max() >= vertices.shape[0]:
        raise QuintetError(
            f"face indices must lie in [0, {vertices.shape[0] - 1}], got [{int(faces.min())}, {int(faces.max())}]"
        )


def face_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Gather ``vertices: (B, V, 3)`` by ``faces: (F, 3)`` into ``(B, F, 3, 3)``."""
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise QuintetError(f"vertices must have shape (B, V, 3), got {tuple(vertices.shape)}")
    return vertices[:, faces]


def _colors(array: Optional[np.ndarray], count: int) -> Optional[torch.Tensor]:
    if array is None or len(array) != count:
        return None
    rgb = torch.as_tensor(np.asarray(array)[:, :3], dtype=torch.float32) / 255.0
    return rgb if (rgb < 1).any() else None  # trimesh's default white carries no information


def load_mesh(path: str | os.PathLike, normalize: bool = False) -> Mesh:
    """Load a mesh file (OBJ, PLY, STL, OFF, GLB, …) with trimesh, triangulated, vertex order kept.

    ``normalize=True`` centres the bounding box at 0 and scales its longest side to 2 (fits [-1, 1]).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise QuintetError(f"mesh file {path} not found")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False, maintain_order=True)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise QuintetError(f"cannot read mesh {path}: {exc}") from None
    faces_np = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))))
    vertices_np = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))))
    if faces_np.size == 0:
        raise QuintetError(f"mesh {path} has no faces; expected at least one triangle")
    vertices = torch.as_tensor(vertices_np, dtype=torch.float32)
    faces = torch.as_tensor(faces_np, dtype=torch.long)
    check_mesh(vertices, faces)
    if normalize:
        lo, hi = vertices.min(0).values, vertices.max(0).values
        vertices = (vertices - (lo + hi) / 2) * (2.0 / float((hi - lo).max().clamp_min(1e-12)))
    visual = getattr(loaded, "visual", None)
    vertex_colors = face_colors = None
    if visual is not None and getattr(visual, "kind", None) == "vertex":
        vertex_colors = _colors(visual.vertex_colors, len(vertices))
    elif visual is not None and getattr(visual, "kind", None) == "face":
        face_colors = _colors(visual.face_colors, len(faces))
    return Mesh(vertices, faces, face_colors=face_colors, vertex_colors=vertex_colors)
