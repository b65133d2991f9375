"""Fixtures of the renderer's tests: the teapot from the data root, in screen space."""

from __future__ import annotations

import pytest
import torch

from quintet.render.camera import project
from quintet.render.mesh import load_mesh


@pytest.fixture(scope="session")
def teapot(data_dir):
    return load_mesh(data_dir / "meshes" / "teapot.obj")


@pytest.fixture(scope="session")
def teapot_screen(teapot) -> torch.Tensor:
    return teapot.face_vertices(project(teapot.vertices, 2.732, 30.0, 45.0, 30.0))
