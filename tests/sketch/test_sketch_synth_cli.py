"""Procedural corpus: constraints hold, SolveSpace solves, corpus format, stats, CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.sketch import Constraint, Line, Sketch, max_residual, save_sketch
from quintet.sketch.corpus import corpus_stats, load_corpus, write_corpus
from quintet.sketch.solve import solve_many
from quintet.sketch.synth import FAMILIES, generate_sketch, generate_sketches


def test_generated_sketches_hold_and_solve():
    sketches = generate_sketches(60, seed=11)
    assert {s.name for s in sketches} <= set(FAMILIES)
    assert all(6 <= len(s.primitives) <= 16 for s in sketches)
    for s in sketches:
        size = max(s.bbox()[2] - s.bbox()[0], s.bbox()[3] - s.bbox()[1])
        assert max_residual(s) / size < 1e-12
    results = solve_many(sketches)
    assert all(r.ok for r in results)
    dofs = np.array([r.dof for r in results])
    assert np.mean(dofs == 0) > 0.9 and dofs.max() <= 3


def test_unknown_family():
    with pytest.raises(QuintetError, match="unknown sketch family"):
        generate_sketch(np.random.default_rng(0), family="teapot")


def test_corpus_write_load_stats(tmp_path):
    meta = write_corpus(tmp_path / "c", 300, seed=1, workers=1, chunk=100, progress=False)
    c = load_corpus(tmp_path / "c")
    assert len(c) == meta["n"] == 300
    assert c.prim_val.dtype == np.uint8
    s = c.sketch(7)
    assert 6 <= len(s.primitives) <= 16
    stats = corpus_stats(c)
    assert stats["n_sketches"] == 300
    assert sum(stats["primitive_freq"].values()) == pytest.approx(1.0)
    assert stats["constraint_freq"]["coincident"] > 0.1
    with pytest.raises(QuintetError, match="no sketch corpus"):
        load_corpus(tmp_path / "nothing")


def test_cli(tmp_path, capsys):
    s = generate_sketches(1, seed=4)[0]
    f = save_sketch(s, tmp_path / "s.json")
    assert main(["sketch", "solve", str(f), "--out", str(tmp_path / "solved.json")]) == 0
    assert "status: ok" in capsys.readouterr().out
    assert main(["sketch", "show", str(f), "--out", str(tmp_path / "s.svg"), "--constraints"]) == 0
    assert (tmp_path / "s.svg").stat().st_size > 1000
    assert main(["sketch", "export", str(f), "--dxf", str(tmp_path / "s.dxf")]) == 0
    assert (tmp_path / "s.dxf").read_text().count("LINE") >= 4
    assert main(["sketch", "corpus", "--n", "50", "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert main(["sketch", "stats", str(tmp_path / "c"), "--no-compare"]) == 0
    assert "coincident" in capsys.readouterr().out
    assert main(["sketch", "solve", str(tmp_path / "missing.json")]) == 2
    contradictory = Sketch([Line(0, 0, 2, 0.1)], [Constraint("horizontal", [(0, "whole")]), Constraint("vertical", [(0, "whole")]), Constraint("length", [(0, "whole")], 1.0)])
    assert main(["sketch", "solve", str(save_sketch(contradictory, tmp_path / "inc.json"))]) == 1
    assert "status: inconsistent" in capsys.readouterr().out
    assert main(["sketch", "show", str(f), "--hand-drawn", "--out", str(tmp_path / "h.png")]) == 0
    with Image.open(tmp_path / "h.png") as im:
        assert im.mode == "L" and im.size == (128, 128)
        ink = np.asarray(im)
    assert ink.min() == 0 and ink.max() == 255 and 0.005 < np.mean(ink < 128) < 0.3  # dark strokes on white
    (tmp_path / "bad.json").write_text(json.dumps({"primitives": [{"type": "line", "params": [0, 0, 1, 0]}], "constraints": [{"type": "fix", "refs": [[4, "whole"]]}]}))
    assert main(["sketch", "solve", str(tmp_path / "bad.json")]) == 2
    assert "references primitive 4" in capsys.readouterr().err


def test_design_intent_families_have_parallel_perpendicular_and_points():
    """Parallelogram/trapezoid plates (Parallel), ribs and relative orientation (Perpendicular),
    hole-centre and datum points (Coincident/Fix) appear, and such sketches are fully constrained."""
    from quintet.sketch.corpus import token_stats
    from quintet.sketch.tokens import encode_sketch

    rng = np.random.default_rng(5)
    slanted = [generate_sketch(rng, family=f) for f in ("parallelogram", "trapezoid") for _ in range(4)]
    results = solve_many(slanted)
    assert all(r.ok and r.dof == 0 for r in results)
    assert all(any(c.type.value == "parallel" for c in s.constraints) for s in slanted)
    stats = token_stats((t.primitives.val, t.constraints.val) for t in map(encode_sketch, generate_sketches(300, seed=2)))
    assert stats["constraint_freq"]["parallel"] > 0.02 and stats["constraint_freq"]["perpendicular"] > 0.02
    assert stats["primitive_freq"]["point"] > 0.03
