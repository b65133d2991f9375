"""The rasteriser: identities with SoftRas and a z-buffer, area, binned = dense, gradients, colour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.render.distributions import DISTRIBUTIONS
from quintet.render.rasterize import (
    RenderSettings,
    pixel_centers,
    render,
    render_dense,
    signed_distance,
)
from quintet.render.tconorms import TCONORMS

# three overlapping triangles of both windings, depth 2..4, in screen space
SCENE = torch.tensor(
    [[[[-0.8, -0.6, 2.0], [0.5, -0.7, 2.5], [-0.1, 0.7, 3.0]],
      [[0.0, -0.2, 3.0], [0.9, 0.8, 3.5], [0.7, -0.9, 4.0]],
      [[-0.9, 0.9, 2.2], [-0.3, 0.2, 2.2], [-0.95, 0.1, 2.2]]]],
    dtype=torch.float64,
)


def _numpy_point_segment(p, a, b):
    ab, ap = b - a, p - a
    t = np.clip(np.dot(ap, ab) / np.dot(ab, ab), 0, 1)
    return np.linalg.norm(ap - t * ab)


def _numpy_inside(p, tri):
    (x0, y0), (x1, y1), (x2, y2) = tri
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    l0 = ((y1 - y2) * (p[0] - x2) + (x2 - x1) * (p[1] - y2)) / det
    l1 = ((y2 - y0) * (p[0] - x2) + (x0 - x2) * (p[1] - y2)) / det
    return min(l0, l1, 1 - l0 - l1) >= 0


def _softras_silhouette(faces: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """SoftRas (Liu et al. 2019) silhouette: D = sigmoid(δ d² / σ), A = 1 − ∏(1 − D), pixel by pixel."""
    out = np.zeros((size, size))
    for row in range(size):
        for col in range(size):
            p = np.array([(2 * col + 1 - size) / size, (size - 1 - 2 * row) / size])
            keep = 1.0
            for tri in faces:
                d = min(_numpy_point_segment(p, tri[k], tri[(k + 1) % 3]) for k in range(3))
                sign = 1.0 if _numpy_inside(p, tri) else -1.0
                keep *= 1 - 1 / (1 + math.exp(min(700.0, -sign * d * d / sigma)))
            out[row, col] = 1 - keep
    return out


def test_logistic_squared_probabilistic_is_softras():
    sigma = 3e-3
    settings = RenderSettings(image_size=12, dist="logistic", tau=sigma, squared=True, tconorm="probabilistic",
                              eps=0.0, blend="none")
    ours = render(SCENE, settings)[0].numpy()
    np.testing.assert_allclose(ours, _softras_silhouette(SCENE[0, :, :, :2].numpy(), 12, sigma), atol=1e-10)


def test_hard_max_is_zbuffer_mask():
    settings = RenderSettings(image_size=24, dist="hard", tau=1.0, tconorm="max", blend="none")
    ours = render(SCENE, settings)[0].numpy()
    faces = SCENE[0, :, :, :2].numpy()
    mask = np.zeros((24, 24))
    for row in range(24):
        for col in range(24):
            p = np.array([(2 * col + 1 - 24) / 24, (23 - 2 * row) / 24])
            mask[row, col] = any(_numpy_inside(p, tri) for tri in faces)
    np.testing.assert_array_equal(ours, mask)


def test_uniform_coverage_integrates_to_area():
    tri = torch.tensor([[[[-0.7, -0.5, 2.0], [0.8, -0.6, 2.0], [0.1, 0.75, 2.0]]]], dtype=torch.float64)
    (a, b, c) = tri[0, 0, :, :2]
    area = 0.5 * abs(float((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]))
    size = 256
    errors = []
    for tau in (0.1, 0.03, 0.01):
        settings = RenderSettings(image_size=size, dist="uniform", tau=tau, squared=False, eps=0.0, blend="none")
        errors.append(abs(float(render(tri, settings).sum()) * (2 / size) ** 2 - area) / area)
    assert errors[-1] < 1e-3
    assert errors[0] > errors[1] > errors[2]  # only the corners differ, an O(τ²) effect


def test_signed_distance_values():
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    points = torch.tensor([[0.25, 0.25], [-0.5, 0.5], [2.0, 0.0], [0.5, -0.1]])
    sd, bary = signed_distance(points, corners)
    torch.testing.assert_close(sd, torch.tensor([0.25, -0.5, -1.0, -0.1]))
    torch.testing.assert_close(bary[0], torch.tensor([0.5, 0.25, 0.25]))
    sd_flipped, _ = signed_distance(points, corners.flip(0))
    torch.testing.assert_close(sd_flipped, sd)


def test_pixel_centers_row_zero_is_top():
    centers = pixel_centers(4)
    torch.testing.assert_close(centers[0], torch.tensor([-0.75, 0.75]))
    torch.testing.assert_close(centers[-1], torch.tensor([0.75, -0.75]))


SETTING_CASES = [
    ("logistic", 1e-3, True, "probabilistic", None),
    ("uniform", 0.05, False, "yager", 2.0),
    ("gaussian", 0.02, False, "einstein", None),
    ("cauchy", 0.01, False, "max", None),
    ("gamma_rev", 0.02, False, "aczel_alsina", 0.5),
    ("hard", 1.0, False, "hamacher", 3.0),
]


@pytest.mark.parametrize("dist,tau,squared,tcn,p", SETTING_CASES)
@pytest.mark.parametrize("blend", ["none", "softmax", "hard"])
def test_binned_equals_dense(dist, tau, squared, tcn, p, blend):
    settings = RenderSettings(image_size=20, dist=dist, tau=tau, squared=squared, tconorm=tcn, p=p, blend=blend,
                              double_side=True)
    colors = torch.rand(1, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    scene = SCENE.clone().requires_grad_()
    fast = render(scene, settings, colors)
    dense = render_dense(scene, settings, colors)
    torch.testing.assert_close(fast, dense, rtol=1e-9, atol=1e-12)
    if fast.requires_grad:  # the hard distribution with blend "none" has no gradient
        (g_fast,) = torch.autograd.grad(fast.square().sum(), scene)
        (g_dense,) = torch.autograd.grad(dense.square().sum(), scene)
        torch.testing.assert_close(g_fast, g_dense, rtol=1e-7, atol=1e-10)


def test_binned_equals_dense_on_teapot(teapot_screen):
    settings = RenderSettings(image_size=32, dist="logistic", tau=1e-4, squared=True, blend="softmax")
    fast = render(teapot_screen, settings)
    dense = render_dense(teapot_screen, settings)
    torch.testing.assert_close(fast, dense, rtol=1e-4, atol=1e-5)
    assert 50 < float(fast[0, 3].sum()) < 32 * 32


SMALL = torch.tensor([[[[-0.6, -0.5, 2.0], [0.55, -0.45, 2.5], [0.05, 0.6, 3.0]],
                       [[0.1, -0.1, 2.6], [0.7, 0.55, 2.9], [0.65, -0.6, 3.1]]]], dtype=torch.float64)


@pytest.mark.parametrize("dist", sorted(set(DISTRIBUTIONS) - {"hard"}))
def test_render_gradcheck_distributions(dist):
    tau = 0.002 if dist in ("logistic", "laplace", "gudermannian", "gaussian") else 0.05
    settings = RenderSettings(image_size=6, dist=dist, tau=tau, squared=dist == "logistic", shape=2.0, shift=0.3,
                              eps=0.0, blend="none")
    x = SMALL.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: render(v, settings), (x,), atol=1e-6)


@pytest.mark.parametrize("tcn", list(TCONORMS))
def test_render_gradcheck_tconorms(tcn):
    # Aczél–Alsina and Dombi with p < 1 have an infinite slope at coverage 0: check them at p = 2
    p = {"aczel_alsina": 2.0, "dombi": 2.0}.get(tcn)
    settings = RenderSettings(image_size=6, dist="gaussian", tau=0.1, tconorm=tcn, p=p, eps=0.0, blend="none")
    x = SMALL.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: render(v, settings), (x,), atol=1e-6)


def test_softmax_blend_gradcheck_colours_and_vertices():
    settings = RenderSettings(image_size=5, dist="logistic", tau=0.01, squared=False, gamma=0.05, eps=0.0,
                              double_side=True, background=(0.2, 0.3, 0.4))
    colors = torch.rand(1, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = SMALL.clone().requires_grad_()
    c = colors.requires_grad_()
    assert torch.autograd.gradcheck(lambda v, t: render(v, settings, t), (x, c), atol=1e-6)


def test_hard_blend_picks_nearest_face_and_background():
    near = [[-0.9, -0.9, 2.0], [0.9, -0.9, 2.0], [0.0, 0.9, 2.0]]
    far = [[-0.9, -0.9, 5.0], [0.9, -0.9, 5.0], [0.0, 0.9, 5.0]]
    faces = torch.tensor([[far, near]])
    colors = torch.tensor([[[[1.0, 0, 0]] * 3, [[0, 1.0, 0]] * 3]])
    settings = RenderSettings(image_size=8, dist="hard", tau=1.0, tconorm="max", blend="hard", double_side=True,
                              background=(0.0, 0.0, 1.0))
    image = render(faces, settings, colors)[0]
    torch.testing.assert_close(image[:, 5, 4], torch.tensor([0.0, 1.0, 0.0, 1.0]))  # green face in front
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([0.0, 0.0, 1.0, 0.0]))  # background corner


def test_softmax_blend_small_gamma_is_front_colour_and_vertex_colours_interpolate():
    face = torch.tensor([[[[-0.9, -0.9, 2.0], [0.9, -0.9, 2.0], [0.0, 0.9, 2.0]]]])
    back = face.clone()
    back[..., 2] = 3.0
    colors = torch.tensor([[[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], [[0.5, 0.5, 0.5]] * 3]])
    settings = RenderSettings(image_size=16, dist="uniform", tau=0.01, squared=False, gamma=1e-4,
                              double_side=True)
    image = render(torch.cat([face, back], 1), settings, colors)[0]
    # the pixel nearest the top corner (0, 0.9) is mostly blue, centre pixels mix all three
    top = image[:3, 1, 7] if image[3, 1, 7] > 0.9 else image[:3, 2, 7]
    assert float(top[2]) > 0.7
    centre = image[:3, 9, 8]
    assert torch.allclose(centre.sum(), torch.tensor(1.0), atol=1e-3) and (centre > 0.15).all()


@pytest.mark.parametrize("bad", [
    dict(dist="normal"), dict(tconorm="sum"), dict(tau=0.0), dict(tau=-1.0), dict(tau=float("nan")),
    dict(tconorm="yager", p=-2.0), dict(tconorm="schweizer_sklar", p=1.0), dict(dist="gamma", shape=0.0),
    dict(image_size=0), dict(blend="alpha"), dict(eps=0.7),
])
def test_bad_settings_raise(bad):
    with pytest.raises(QuintetError):
        RenderSettings(**bad)


def test_bad_face_vertices_raise():
    settings = RenderSettings(blend="none")
    with pytest.raises(QuintetError, match="shape"):
        render(torch.zeros(1, 3, 3), settings)
    bad = SCENE.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(QuintetError, match="NaN"):
        render(bad, settings)
