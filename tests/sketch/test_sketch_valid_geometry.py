"""The validity mask of the primitive sampler: the bins it forbids are exactly those that leave the
primitive being sampled degenerate (checked against the decoder, candidate by candidate), and a
model that prefers degenerate geometry samples only valid primitives under it."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.sketch.models import (
    ConstraintModel,
    ConstraintModelConfig,
    PrimitiveDecodeState,
    PrimitiveGrammar,
    PrimitiveModel,
    PrimitiveModelConfig,
)
from quintet.sketch.models.data import tokens_to_sketch
from quintet.sketch.models.grammar import PAD, STOP
from quintet.sketch.models.residual_check import relative_residuals
from quintet.sketch.models.sample import sample_primitives
from quintet.sketch.models.validity import arc_rejected, forbidden_bins
from quintet.sketch.primitives import Arc

G = PrimitiveGrammar()
TINY = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64)
TYPES = {"arc": 0, "circle": 1, "line": 2}


class PrefersDegenerate(torch.nn.Module):
    """A primitive model whose next-token logits put (almost) all mass on degenerate geometry.

    It adds 20 to the wrapped model's logit of one token: after the first point of a line or an
    arc, the bin two places back (line end on its start; arc mid on its start, end on its mid);
    types cycle line, arc, circle; Stop after six primitives. Drawn as it likes, every line and
    arc is degenerate.
    """

    def __init__(self, inner: PrimitiveModel):
        super().__init__()
        self.inner = inner
        self.grammar, self.config = inner.grammar, inner.config

    def new_cache(self, n: int, max_len: int | None = None) -> dict:
        return {"inner": self.inner.new_cache(n, max_len), "seen": []}

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_image(image)

    def forward(self, val, coord, pos, *, memory=None, cache=None):
        logits = self.inner(val, coord, pos, memory=memory, cache=None if cache is None else cache["inner"])
        if cache is not None:
            cache["seen"].append(val)
            val = torch.cat(cache["seen"], 1)
        favourite = torch.tensor([self._favourite(row) for row in val.tolist()])
        logits[torch.arange(len(favourite)), -1, favourite] += 20.0
        return logits

    def _favourite(self, row: list[int]) -> int:
        g, toks = self.grammar, [t for t in row if t != PAD]
        i, n_done = 1, 0
        while i < len(toks):
            if toks[i] == STOP:
                return PAD
            t = toks[i] - g.type_offset
            k = g.n_params[t]
            if i + k + 1 < len(toks):  # a complete primitive
                i, n_done = i + k + 2, n_done + 1
                continue
            j = len(toks) - i - 1  # parameters emitted
            if j == k:
                return g.flag_token(False)
            bins = [b - g.bin_offset for b in toks[i + 1 :]]
            if g.type_names[t] in ("line", "arc") and j >= 2:
                return g.bin_token(bins[j - 2])
            return g.bin_token((11 * j + 5 * n_done + 3) % g.num_bins)
        if n_done >= 6:
            return STOP
        return g.type_token(G.type_names.index(("line", "arc", "circle")[n_done % 3]))


def _stub(kind: str = "primitive") -> PrefersDegenerate:
    torch.manual_seed(0)
    return PrefersDegenerate(PrimitiveModel(PrimitiveModelConfig(kind=kind, image_layers=1, **TINY)))


def _parses(seq: list[int]) -> bool:
    try:
        tokens_to_sketch(seq)
    except QuintetError:
        return False
    return True


def _rejected(g: PrimitiveGrammar, t: int, bins: list[int]) -> bool:
    try:
        tokens_to_sketch(g.encode([(t, bins, False)]), bits=g.num_bins.bit_length() - 1)
    except QuintetError:
        return True
    return False


PRIMER = G.encode([(2, [5, 5, 40, 5], False), (1, [20, 20, 40], False)])[:-1]


@pytest.mark.parametrize("top_p", [0.9, None], ids=["nucleus", "greedy"])
@pytest.mark.parametrize("case", ["plain", "primer", "image"])
def test_masked_sampler_returns_only_valid_geometry(top_p, case):
    model = _stub("image-primitive" if case == "image" else "primitive")
    kw = {"primers": [PRIMER]} if case == "primer" else {}
    if case == "image":
        kw["image"] = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(0))

    def draw(valid: bool) -> list[list[int]]:
        return sample_primitives(model, 6, top_p=top_p, generator=torch.Generator().manual_seed(1),
                                 valid_geometry=valid, **kw)

    masked, free = draw(True), draw(False)
    for s in masked + free:
        assert G.is_valid(s)
        if case == "primer":
            assert s[: len(PRIMER)] == PRIMER
    assert all(_parses(s) for s in masked)  # every primitive drawable
    assert not any(_parses(s) for s in free)  # the model as it is: degenerate lines and arcs
    kinds = {G.type_names[t] for s in masked for t, _, _ in G.decode(s)}
    assert {"line", "arc"} <= kinds  # the mask steered the primitives, it did not avoid them


def test_masked_sampler_is_the_default_and_cache_agrees():
    model = _stub()
    a = sample_primitives(model, 4, top_p=None)
    b = sample_primitives(model, 4, top_p=None, use_cache=False, valid_geometry=True)
    assert a == b and all(_parses(s) for s in a)


def _state_after(g: PrimitiveGrammar, t: int, bins: list[int]) -> PrimitiveDecodeState:
    """A one-row decode state with a finished line before the primitive of type ``t`` and ``bins``."""
    state = PrimitiveDecodeState(g, 1, max_len=200, valid_geometry=True)
    lead = g.encode([(2, [0, 1, 2, 3], True)])[1:-1]
    for tok in lead + [g.type_token(t)] + [g.bin_token(b) for b in bins]:
        state.advance(torch.tensor([tok]))
    return state


def _forbidden_by_state(g: PrimitiveGrammar, t: int, bins: list[int]) -> set[int]:
    allowed = _state_after(g, t, bins).allowed()[0, g.bin_offset : g.flag_offset]
    return set((~allowed).nonzero().flatten().tolist())


def _reachable(g: PrimitiveGrammar, t: int, bins: list[int]) -> bool:
    """Whether the mask lets every bin of the prefix through (a prefix it forbade is no state of
    a masked sampler)."""
    return all(bins[i] not in _forbidden_by_state(g, t, bins[:i]) for i in range(len(bins)))


G3 = PrimitiveGrammar(num_bins=8)


@st.composite
def prefixes(draw, g: PrimitiveGrammar, last_only: bool):
    """(type, bins so far) inside a line, circle or arc; coordinates often repeat (collinear,
    coincident cases) through a small pool of bins."""
    name = draw(st.sampled_from(sorted(TYPES)))
    k = G.n_params[TYPES[name]]
    lo = k - 1 if last_only else max(1, k - 4)
    j = draw(st.integers(lo, k - 1))
    pool = draw(st.lists(st.integers(0, g.num_bins - 1), min_size=1, max_size=3))
    bins = draw(st.lists(st.one_of(st.sampled_from(pool), st.integers(0, g.num_bins - 1)), min_size=j, max_size=j))
    return TYPES[name], bins


@settings(max_examples=60, deadline=None)
@given(prefixes(G3, last_only=False))
def test_forbidden_bins_are_exactly_the_dead_ends_small_grid(prefix):
    """3-bit grid: a bin is forbidden iff no completion of the primitive decodes (brute force)."""
    t, bins = prefix
    assume(_reachable(G3, t, bins))
    rest = G3.n_params[t] - len(bins) - 1
    expected = {b for b in range(G3.num_bins)
                if all(_rejected(G3, t, bins + [b, *c]) for c in itertools.product(range(G3.num_bins), repeat=rest))}
    got = _forbidden_by_state(G3, t, bins)
    assert got == expected
    assert len(got) < G3.num_bins  # a valid bin always remains


@settings(max_examples=60, deadline=None)
@given(prefixes(G, last_only=True))
def test_forbidden_last_coordinate_is_what_the_decoder_rejects(prefix):
    """6-bit grid, last coordinate: forbidden iff tokens_to_sketch rejects the primitive."""
    t, bins = prefix
    assume(_reachable(G, t, bins))
    expected = {b for b in range(G.num_bins) if _rejected(G, t, bins + [b])}
    assert _forbidden_by_state(G, t, bins) == expected


def test_known_dead_ends_and_nothing_elsewhere():
    line, arc, circle = TYPES["line"], TYPES["arc"], TYPES["circle"]
    assert _forbidden_by_state(G, line, [10, 20, 10]) == {20}  # end on start
    assert _forbidden_by_state(G, line, [10, 20, 11]) == set()
    assert _forbidden_by_state(G, arc, [10, 20, 10]) == {20}  # mid on start
    assert _forbidden_by_state(G, arc, [10, 20, 10, 30]) == {10}  # end on the vertical line
    assert _forbidden_by_state(G, arc, [10, 20, 30, 40, 50]) == {60}  # (50, 60) on the line through s, m
    assert _forbidden_by_state(G, circle, [10, 20]) == set()  # |v| > 0 for every bin of an even grid
    assert _forbidden_by_state(G, 3, [10]) == set()  # a point is never degenerate
    assert _forbidden_by_state(G, arc, [10, 20]) == set()


def _reference_rejects(p: list[float]) -> bool:
    try:
        arc, _ = Arc.through(p[0:2], p[2:4], p[4:6])
    except QuintetError:
        return True
    return arc.is_degenerate


coordinate = st.one_of(st.integers(0, 63).map(lambda b: -0.5 + b / 63.0),
                       st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(coordinate, min_size=6, max_size=6), st.data())
def test_arc_rejected_equals_the_arc_class(p, data):
    # collinear and coincident configurations are drawn on purpose
    if data.draw(st.booleans()):
        u = data.draw(st.floats(-2, 2, allow_nan=False))
        p[4], p[5] = p[0] + u * (p[2] - p[0]), p[1] + u * (p[3] - p[1])
    got = arc_rejected(*(torch.tensor(v, dtype=torch.float64) for v in p))
    assert bool(got) == _reference_rejects(p)


def test_a_dead_end_after_forced_tokens_falls_back_to_the_grammar_mask():
    state = PrimitiveDecodeState(G, 2, max_len=40, valid_geometry=True)
    plain = PrimitiveDecodeState(G, 2, max_len=40)
    # row 0: an arc forced to start = mid (every end collinear): no ey is left;
    # row 1: a sound arc whose end (50, 60) would lie on the line through start and mid
    rows = [[10, 20, 10, 20, 10], [10, 20, 30, 40, 50]]
    for s in (state, plain):
        s.advance(torch.tensor([G.type_token(TYPES["arc"])] * 2))
        for j in range(5):
            s.advance(torch.tensor([G.bin_token(r[j]) for r in rows]))
    mask = state.allowed()
    assert torch.equal(mask[0], plain.allowed()[0])  # nothing left: grammar mask for that row
    assert state.geometry_fallbacks.tolist() == [1, 0]
    assert not mask[1, G.bin_offset + 60] and int(mask[1].sum()) == G.num_bins - 1


def test_validity_mask_needs_the_decoder_layout():
    with pytest.raises(QuintetError, match="line of 4 parameters"):
        PrimitiveDecodeState(PrimitiveGrammar(n_params=(6, 3, 3, 2)), 1, 10, valid_geometry=True)
    state = PrimitiveDecodeState(PrimitiveGrammar(n_params=(6, 3, 3, 2)), 1, 10)  # no mask: any layout
    assert state.allowed().any()


def test_forbidden_bins_ignores_rows_between_primitives():
    out = forbidden_bins(G.type_names, G.num_bins, torch.tensor([-1, 3]), torch.tensor([0, 1]),
                         torch.zeros(2, 6, dtype=torch.long))
    assert out.shape == (2, 64) and not out.any()


# ---- experiment and command line ----------------------------------------------------------------


def _tiny_constraint() -> ConstraintModel:
    torch.manual_seed(0)
    return ConstraintModel(ConstraintModelConfig(n_encoder_layers=1, max_constraint_len=12, **TINY))


def test_sample_and_solve_counts_degenerate_primitives_with_and_without_the_mask():
    from quintet.sketch.models.experiment import sample_and_solve

    model, cons = _stub(), _tiny_constraint()
    masked, sketches = sample_and_solve(model, cons, 3, 0.9, 60, seed=0)
    free, _ = sample_and_solve(model, cons, 3, 0.9, 60, seed=0, valid_geometry=False)
    repaired, _ = sample_and_solve(model, cons, 3, 0.9, 60, seed=0, valid_geometry=False, drop_degenerate=True)
    assert masked["valid_geometry"] and masked["parse_fraction_as_sampled"] == 1.0
    assert masked["degenerate_primitives_mean"] == 0.0 and len(sketches) == 3
    counts = masked["solve_status_counts"]
    assert sum(counts.values()) == 3 and counts.get("ok", 0) == round(3 * masked["solve_fraction"])
    assert free["parse_fraction_as_sampled"] == 0.0 and free["solve_fraction"] == 0.0
    assert free["degenerate_primitives_mean"] >= 2 and set(free["degenerate_primitives_by_type"]) <= {"line", "arc"}
    assert repaired["parse_fraction"] == 1.0 and repaired["degenerate_primitives_mean"] == free["degenerate_primitives_mean"]
    # the residual check: a tolerance no residual reaches changes nothing; tolerance 0 drops every
    # inferred constraint the sampled geometry does not meet exactly
    kept, _ = sample_and_solve(model, cons, 3, 0.9, 60, seed=0, tolerance=1e9)
    assert kept["unmet_constraints_removed_mean"] == 0.0 and kept["solve_fraction"] == masked["solve_fraction"]
    assert math.isnan(masked["unmet_constraints_removed_mean"]) and masked["tolerance"] is None
    strict, checked = sample_and_solve(model, cons, 3, 0.9, 60, seed=0, tolerance=0.0)
    removed = sum(len(a.constraints) - len(b.constraints) for a, b in zip(sketches, checked))
    assert strict["unmet_constraints_removed_mean"] == removed / 3
    assert all(r is None or r == 0 for sk in checked for r in relative_residuals(sk))
    # the residual mask: constraints are decoded to meet the geometry, and kept = inferred - dropped
    decoded, masked_sketches = sample_and_solve(model, cons, 3, 0.9, 60, seed=0, tolerance=0.05, residual_mask=True)
    assert decoded["residual_mask"] and not masked["residual_mask"] and decoded["kept_constraints_mean"] > 0
    assert decoded["kept_constraints_mean"] == pytest.approx(
        decoded["inferred_constraints_mean"] - decoded["unmet_constraints_removed_mean"])
    assert all(r is not None and r <= 0.05 for sk in masked_sketches for r in relative_residuals(sk))
    with pytest.raises(QuintetError, match="needs a tolerance"):
        sample_and_solve(model, cons, 3, 0.9, 60, seed=0, residual_mask=True)


def test_generate_cli_valid_and_any_geometry(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import quintet.sketch.models as models
    from quintet.sketch.models.cli import app

    stub, cons = _stub(), _tiny_constraint()
    monkeypatch.setattr(models, "load_model", lambda path, kind: cons if kind == models.KIND_CONSTRAINT else stub)
    runner = CliRunner()
    for flag, ok in (("--valid-geometry", True), ("--any-geometry", False)):
        out = tmp_path / flag
        r = runner.invoke(app, ["generate", "--out", str(out), "--n", "2", "--models", str(tmp_path), flag])
        assert r.exit_code == 0, r.output
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary) == 2
        assert all(("error" not in s) == ok for s in summary), summary
    assert "--any-geometry" in runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"}).output
    summary = json.loads((tmp_path / "--valid-geometry" / "summary.json").read_text())
    assert all("unmet_constraints_dropped" in s for s in summary), summary  # the residual mask is the default
    out = tmp_path / "unrestricted"
    r = runner.invoke(app, ["generate", "--out", str(out), "--n", "2", "--models", str(tmp_path), "--residual-mask", "0"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert not any("unmet_constraints_dropped" in s for s in summary), summary
    for bad in ("-0.1", "1.5", "nan"):
        r = runner.invoke(app, ["generate", "--out", str(out), "--models", str(tmp_path), "--residual-mask", bad])
        assert r.exit_code == 2 and "--residual-mask" in r.output, (bad, r.output)


def test_collapsed_primitives_counts_what_a_solve_shrank():
    from quintet.sketch import Constraint, ConstraintType, Line, Ref, Sketch
    from quintet.sketch.models.experiment import collapsed_primitives, solve_sketch
    from quintet.sketch.primitives import Arc, Circle

    assert collapsed_primitives(Sketch([Line(0, 0, 1, 0), Circle(0, 0, 0.2), Arc(1, 0, 0, 1, -1, 0)], [])) == 0
    assert collapsed_primitives(Sketch([Line(0, 0, 0, 1e-7), Circle(0, 0, 0.0), Arc(1, 0, 0, 1, 1, 0)], [])) == 3
    # both ends of line 1 coincide with line 0's end: SolveSpace meets it by shrinking line 1
    pinch = [Constraint(ConstraintType.COINCIDENT, (Ref(0, "end"), Ref(1, part))) for part in ("start", "end")]
    ok, _, solved = solve_sketch(Sketch([Line(0, 0, 1, 0), Line(1, 0, 1, 1)], pinch))
    assert ok and collapsed_primitives(solved) == 1
