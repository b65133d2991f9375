"""Cameras, meshes, lighting and regularisers."""

from __future__ import annotations

import math

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.render.camera import get_points_from_angles, look, look_at, perspective, project
from quintet.render.mesh import Mesh, load_mesh
from quintet.render.shading import face_normals, flatten_loss, laplacian_loss, lighting, mesh_edges


def test_points_from_angles_conventions():
    eye = get_points_from_angles(2.0, 0.0, 0.0)
    torch.testing.assert_close(eye, torch.tensor([0.0, 0.0, -2.0]))
    torch.testing.assert_close(get_points_from_angles(2.0, 90.0, 0.0), torch.tensor([0.0, 2.0, 0.0]), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(get_points_from_angles(1.0, 0.0, 90.0), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6,
                               rtol=0)


def test_look_at_from_minus_z_is_a_translation():
    v = torch.randn(1, 5, 3)
    out = look_at(v, [0.0, 0.0, -3.0])
    torch.testing.assert_close(out, v + torch.tensor([0.0, 0.0, 3.0]))
    torch.testing.assert_close(look(v, [0.0, 0.0, -3.0]), out)


def test_look_at_keeps_distances_and_puts_target_on_axis():
    v = torch.randn(2, 7, 3)
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]])
    out = look_at(v, eye)
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(v, v), atol=1e-5, rtol=0)
    centre = look_at(torch.zeros(2, 1, 3), eye)[:, 0]
    torch.testing.assert_close(centre[:, :2], torch.zeros(2, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(centre[:, 2], eye.norm(dim=-1))


def test_perspective_and_screen_orientation():
    point = torch.tensor([[[1.0, 0.5, 4.0]]])
    out = perspective(point, 30.0)
    width = math.tan(math.radians(30.0))
    torch.testing.assert_close(out, torch.tensor([[[1.0 / 4 / width, 0.5 / 4 / width, 4.0]]]))
    # a point above the origin (+y) lands in the upper half of the screen, +x to the right
    up = project(torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0]]), 3.0, 0.0, 0.0, 30.0)[0]
    assert up[0, 1] > 0 and abs(float(up[0, 0])) < 1e-6 and up[1, 0] > 0


def test_load_teapot(teapot):
    assert teapot.vertices.shape == (1292, 3) and teapot.faces.shape == (2464, 3)
    assert teapot.face_vertices().shape == (1, 2464, 3, 3)
    assert torch.equal(teapot.face_textures(), torch.ones(2464, 3, 3))


def test_load_keeps_obj_vertex_order(data_dir):
    sphere = load_mesh(data_dir / "meshes" / "sphere_642.obj")
    assert sphere.vertices.shape == (642, 3) and sphere.faces.shape == (1280, 3)
    first = next(line for line in (data_dir / "meshes" / "sphere_642.obj").read_text().splitlines()
                 if line.startswith("v "))
    torch.testing.assert_close(sphere.vertices[0], torch.tensor([float(x) for x in first.split()[1:4]]))


def test_bad_meshes(tmp_path):
    empty = tmp_path / "empty.obj"
    empty.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(QuintetError, match="no faces"):
        load_mesh(empty)
    nan = tmp_path / "nan.obj"
    nan.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(QuintetError, match="NaN"):
        load_mesh(nan)
    with pytest.raises(QuintetError, match="not found"):
        load_mesh(tmp_path / "missing.obj")
    with pytest.raises(QuintetError, match="face indices"):
        Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 5]]))


def test_quad_is_triangulated(tmp_path):
    quad = tmp_path / "quad.obj"
    quad.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    assert load_mesh(quad).faces.shape == (2, 3)


def test_lighting_ambient_plus_directional():
    up_face = torch.tensor([[[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]])  # normal +y
    torch.testing.assert_close(face_normals(up_face), torch.tensor([[[0.0, 1.0, 0.0]]]))
    lit = lighting(up_face, torch.full((1, 1, 3, 3), 0.8))
    torch.testing.assert_close(lit, torch.full((1, 1, 3, 3), 0.8))
    down = lighting(up_face.flip(-2), torch.full((1, 1, 3, 3), 0.8))
    torch.testing.assert_close(down, torch.full((1, 1, 3, 3), 0.4))


def _grid(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    vertices = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.zeros(n * n, dtype=torch.float64)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]]
    return vertices, torch.tensor(faces)


def test_flatten_loss_zero_on_a_plane_positive_when_folded():
    vertices, faces = _grid()
    assert float(flatten_loss(vertices, faces)) == pytest.approx(0.0, abs=1e-8)
    folded = vertices.clone()
    folded[5, 2] = 1.0
    assert float(flatten_loss(folded, faces)) > 0.1


def test_laplacian_loss_values_and_gradcheck():
    vertices, faces = _grid(3)
    centre = 4  # the middle vertex of a 3×3 grid, degree 6 with this triangulation
    bumped = vertices.clone()
    bumped[centre, 2] = 1.0
    # only the bumped vertex and its neighbours move off the mean of their neighbours
    assert float(laplacian_loss(bumped, faces)) > float(laplacian_loss(vertices, faces))
    assert mesh_edges(faces).shape == (16, 2)
    x = bumped.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: laplacian_loss(v, faces), (x,))
    assert torch.autograd.gradcheck(lambda v: flatten_loss(v, faces), (x,))
