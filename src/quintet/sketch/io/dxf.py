"""DXF export (and a reader for checking it) with ``ezdxf``.

Lines, circles, points and arcs go to model space; DXF arcs run counter-clockwise from
``start_angle`` to ``end_angle`` (degrees), which is our arcs' orientation. Construction geometry is
put on layer ``CONSTRUCTION`` with a dashed line type; the rest on layer ``SKETCH``.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Sketch
from quintet.sketch.primitives import Arc, Circle, Line, Point

__all__ = ["sketch_to_dxf", "write_dxf", "read_dxf"]


def sketch_to_dxf(sketch: Sketch):
    """An ``ezdxf`` document holding the sketch's geometry."""
    import ezdxf

    doc = ezdxf.new("R2010", setup=True)
    doc.layers.add("SKETCH", color=7)
    doc.layers.add("CONSTRUCTION", color=5, linetype="DASHED")
    msp = doc.modelspace()
    for p in sketch.primitives:
        attribs = {"layer": "CONSTRUCTION" if p.construction else "SKETCH"}
        if isinstance(p, Point):
            msp.add_point((p.x, p.y), dxfattribs=attribs)
        elif isinstance(p, Line):
            msp.add_line((p.x0, p.y0), (p.x1, p.y1), dxfattribs=attribs)
        elif isinstance(p, Circle):
            msp.add_circle((p.cx, p.cy), p.r, dxfattribs=attribs)
        elif isinstance(p, Arc):
            if p.is_degenerate:
                msp.add_line(p.start, p.end, dxfattribs=attribs)
                continue
            a0, a1 = p.angles
            msp.add_arc(p.center, p.radius, math.degrees(a0), math.degrees(a1), dxfattribs=attribs)
    return doc


def write_dxf(sketch: Sketch, path: str | os.PathLike) -> Path:
    """Write ``sketch`` as a DXF file (atomically)."""
    from quintet.core.io import atomic_write_text

    path = Path(path)
    buf = io.StringIO()
    sketch_to_dxf(sketch).write(buf)
    atomic_write_text(path, buf.getvalue())
    return path


def read_dxf(path: str | os.PathLike) -> Sketch:
    """Geometry of a DXF file (LINE, CIRCLE, ARC, POINT) as a sketch without constraints."""
    import ezdxf

    path = Path(path)
    if not path.is_file():
        raise QuintetError(f"DXF file {path} does not exist")
    try:
        doc = ezdxf.readfile(str(path))
    except (IOError, ezdxf.DXFStructureError) as exc:
        raise QuintetError(f"DXF file {path}: cannot read it ({exc})") from None
    prims = []
    for e in doc.modelspace():
        cons = e.dxf.layer == "CONSTRUCTION"
        kind = e.dxftype()
        if kind == "LINE":
            prims.append(Line(e.dxf.start.x, e.dxf.start.y, e.dxf.end.x, e.dxf.end.y, cons))
        elif kind == "CIRCLE":
            prims.append(Circle(e.dxf.center.x, e.dxf.center.y, e.dxf.radius, cons))
        elif kind == "ARC":
            prims.append(
                Arc.from_center(e.dxf.center.x, e.dxf.center.y, e.dxf.radius, math.radians(e.dxf.start_angle), math.radians(e.dxf.end_angle), cons)
            )
        elif kind == "POINT":
            prims.append(Point(e.dxf.location.x, e.dxf.location.y, cons))
    return Sketch(prims, [], path.stem)
