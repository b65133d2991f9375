"""Rendering (SVG/PNG, hand-drawn, augmentation) and DXF export read back."""

import math

import numpy as np
import pytest

from quintet.core.errors import QuintetError
from quintet.sketch import Arc, Circle, Line, Point, Sketch
from quintet.sketch.io.dxf import read_dxf, write_dxf
from quintet.sketch.io.render import augment_image, render_hand_drawn, save_figure_file
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
