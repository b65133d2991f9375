"""Rendering (SVG/PNG, hand-drawn, augmentation) and DXF export read back."""

import math

import numpy as np
import pytest

from quintet.core.errors import QuintetError
from quintet.sketch import Arc, Circle, Line, Point, Sketch
from quintet.sketch.io.dxf import read_dxf, write_dxf
from quintet.sketch.io.render import (
    augment_image,
    gp_cholesky,
    hand_drawn_strokes,
    matern32_kernel,
    render_hand_drawn,
    save_figure_file,
)
from quintet.sketch.synth import generate_sketches


def _sketch():
    return Sketch([Line(0, 0, 4, 0), Arc.from_center(2, 0, 2, 0, math.pi), Circle(2, 1, 0.5, True), Point(2, 0)])


def test_svg_png(tmp_path):
    svg = save_figure_file(_sketch(), tmp_path / "a.svg", constraints=True)
    assert svg.read_text().lstrip().startswith("<?xml") and "stroke-dasharray" in svg.read_text()
    png = save_figure_file(_sketch(), tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(QuintetError, match="suffix"):
        save_figure_file(_sketch(), tmp_path / "a.jpg")


def test_dxf_round_trip(tmp_path):
    s = generate_sketches(3, seed=2)[2]
    back = read_dxf(write_dxf(s, tmp_path / "s.dxf"))
    assert [p.type for p in back.primitives] == [p.type for p in s.primitives]
    assert [p.construction for p in back.primitives] == [p.construction for p in s.primitives]
    for p, q in zip(s.primitives, back.primitives):
        assert np.allclose(p.params(), q.params(), atol=1e-9)


def test_dxf_round_trip_with_arcs(tmp_path):
    """Arcs read back as the same three points: small, over pi, across angle 0, construction."""
    arcs = [
        Arc.from_center(2, 0, 2, 0, math.pi),
        Arc.from_center(-1, 3, 0.5, math.radians(300), math.radians(60)),
        Arc.from_center(4, 4, 1.5, math.radians(100), math.radians(390), True),
        Arc.from_center(0, -2, 3, math.radians(-170), math.radians(-160)),
    ]
    s = Sketch([*arcs, Line(0, 0, 4, 0), Circle(2, 1, 0.5, True), Point(2, 0)])
    back = read_dxf(write_dxf(s, tmp_path / "arcs.dxf"))
    assert [p.type for p in back.primitives] == ["arc"] * 4 + ["line", "circle", "point"]
    assert [p.construction for p in back.primitives] == [p.construction for p in s.primitives]
    for p, q in zip(s.primitives, back.primitives):
        assert np.allclose(p.params(), q.params(), atol=1e-9)
    assert [round(math.degrees(a.sweep)) for a in back.primitives[:4]] == [180, 120, 290, 10]


def test_dxf_arc_is_counter_clockwise(tmp_path):
    import ezdxf

    write_dxf(Sketch([Arc.from_center(0, 0, 1, math.radians(30), math.radians(120))]), tmp_path / "a.dxf")
    arc = next(iter(ezdxf.readfile(str(tmp_path / "a.dxf")).modelspace()))
    assert arc.dxf.start_angle == pytest.approx(30) and arc.dxf.end_angle == pytest.approx(120)


def test_hand_drawn():
    s = _sketch()
    a = render_hand_drawn(s, 0)
    b = render_hand_drawn(s, 1)
    assert a.shape == (128, 128) and a.dtype == np.float32
    assert 0.01 < a.mean() < 0.2 and a.max() > 0.9
    assert np.abs(a - b).mean() > 0.005  # the noise differs between draws
    assert np.array_equal(a, render_hand_drawn(s, 0))  # and is seeded
    aug = augment_image(a, 0)
    assert aug.shape == a.shape and abs(aug.sum() / a.sum() - 1) < 0.5 and not np.allclose(aug, a)


def test_matern32_kernel_values():
    s = np.array([0.0, 0.1, 0.3])
    K = matern32_kernel(s, sigma=2.0, length=0.2)
    d = math.sqrt(3) * 0.1 / 0.2
    assert K[0, 0] == pytest.approx(4.0) and K[0, 1] == pytest.approx(4.0 * (1 + d) * math.exp(-d))
    assert np.allclose(K, K.T) and np.all(np.linalg.eigvalsh(K) > 0)
    assert K[0, 1] > K[0, 2] > 0  # decays with distance


def test_gp_cholesky_is_cached_and_has_the_matern_covariance():
    L, lb = gp_cholesky(0.5, 40, 0.01, 0.15)
    L2, lb2 = gp_cholesky(0.51, 40, 0.01, 0.15)  # same length bucket (ratio 1.1): the same factor
    assert L is L2 and lb == lb2 and 0.5 / 1.1 < lb < 0.5 * 1.1
    K = matern32_kernel(np.linspace(0, lb, 40), 0.01, 0.15)
    assert np.allclose(L @ L.T, K, atol=1e-10)
    # empirical covariance of many draws ~ the kernel (the renderer draws noise = L z)
    z = L @ np.random.default_rng(0).standard_normal((40, 8000))
    emp = z @ z.T / z.shape[1]
    assert np.abs(emp - K).max() < 0.08 * K[0, 0]


def test_hand_drawn_strokes_geometry():
    s = Sketch([Line(0, 0, 1, 0), Circle(0.5, 0.2, 0.2), Point(0.5, 0.1)])
    curves, dots = hand_drawn_strokes(s, 0, sigma=0.006)
    line, circle = curves
    # the normalised line lies on y = -0.2 (bbox centred, long side 1); noise is normal to it
    assert np.allclose(line[:, 0], np.linspace(-0.5, 0.5, len(line)))
    assert 0.001 < np.std(line[:, 1] + 0.2) < 0.02
    r = np.hypot(circle[:, 0], circle[:, 1] - 0.0)
    assert abs(np.mean(r) - 0.2) < 0.01
    ang = np.unwrap(np.arctan2(circle[:, 1], circle[:, 0]))
    assert abs(ang[-1] - ang[0]) == pytest.approx(math.radians(359), abs=0.02)  # a 359° arc
    assert dots.shape == (1, 2) and np.hypot(*(dots[0] - [0.0, -0.1])) < 0.05
    clean, _ = hand_drawn_strokes(s, 0, sigma=1e-9)
    assert np.abs(clean[0][:, 1] + 0.2).max() < 1e-6


def test_hand_drawn_augment_and_bad_size():
    s = _sketch()
    a = render_hand_drawn(s, 3, augment=True)
    assert a.shape == (128, 128) and 0.01 < a.mean() < 0.2
    assert np.array_equal(a, render_hand_drawn(s, 3, augment=True))
    assert not np.array_equal(a, render_hand_drawn(s, 3))
    assert render_hand_drawn(s, 0, size=64).shape == (64, 64)
    with pytest.raises(QuintetError, match="size"):
        render_hand_drawn(s, 0, size=4)
