"""Tests of Vitruvion's models: grammar, masks, KV cache, pointer targets, sampling, overfitting."""

from __future__ import annotations

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.sketch.models import (
    ConstraintDecodeState,
    ConstraintGrammar,
    ConstraintModel,
    ConstraintModelConfig,
    ImageEncoder,
    PrimitiveDecodeState,
    PrimitiveGrammar,
    PrimitiveModel,
    PrimitiveModelConfig,
    load_model,
    perturb_bins,
    save_model,
)
from quintet.sketch.models.sample import (
    dedupe_constraints,
    infer_constraints,
    nucleus_filter,
    primitive_batch,
    sample_primitives,
)

G = PrimitiveGrammar()
CG = ConstraintGrammar()
TINY = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64)


def tiny_primitive(kind: str = "primitive", seed: int = 0) -> PrimitiveModel:
    torch.manual_seed(seed)
    return PrimitiveModel(PrimitiveModelConfig(kind=kind, image_layers=1, **TINY))


def tiny_constraint(seed: int = 0) -> ConstraintModel:
    torch.manual_seed(seed)
    return ConstraintModel(ConstraintModelConfig(n_encoder_layers=1, **TINY))


SKETCH = [(2, [1, 2, 30, 2], False), (2, [30, 2, 30, 40], False), (1, [15, 20, 5], True), (3, [7, 8], False)]


def test_grammar_roundtrip_and_streams():
    toks = G.encode(SKETCH)
    assert toks[0] == 1 and toks[-1] == 2
    assert len(toks) == 2 + sum(G.n_params[t] + 2 for t, _, _ in SKETCH)
    assert G.decode(toks) == SKETCH
    coord, pos = G.streams(toks)
    # line: type token non-coord, 4 coordinate ids of the line, flag non-coord
    assert coord[1:7] == [1] + G.coord_ids(2) + [1]
    assert pos[:8] == [1, 2, 2, 2, 2, 2, 2, 3]
    assert pos[-1] == len(SKETCH) + 2
    assert len(set(sum((G.coord_ids(t) for t in range(G.n_types)), []))) == sum(G.n_params)


@pytest.mark.parametrize(
    "bad",
    [[5, 3], [1, 5, 10, 11, 2], [1, 4, 10, 11, 12, 3, 2], [1, 4, 10, 11, 12, 71]],
)
def test_grammar_rejects_bad_sequences(bad):
    with pytest.raises(QuintetError):
        G.decode(bad)
    assert not G.is_valid(bad)


def test_decode_state_matches_teacher_forcing_masks():
    toks = torch.tensor([G.encode(SKETCH)])
    model = tiny_primitive()
    masks = model.masks(toks[:, 1:])
    state = PrimitiveDecodeState(G, 1, max_len=10_000)
    coord, pos = G.streams(toks[0].tolist())
    for t in range(1, toks.shape[1]):
        assert torch.equal(state.allowed()[0], masks[0, t - 1])
        c, p = state.streams(toks[:, t])
        assert (int(c), int(p)) == (coord[t], pos[t])
        state.advance(toks[:, t])
    assert bool(state.finished.all())


def test_nucleus_filter_keeps_smallest_set():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(nucleus_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(nucleus_filter(logits, 0.9))
    assert kept.tolist() == [[True, True, True, False]]
    assert torch.isfinite(nucleus_filter(logits, 0.1)).sum() == 1
    with pytest.raises(QuintetError):
        nucleus_filter(logits, 0.0)


@pytest.mark.parametrize("max_len", [9, 40, 130])
def test_every_sample_is_grammatical_and_fits(max_len):
    model = tiny_primitive()
    gen = torch.Generator().manual_seed(1)
    samples = sample_primitives(model, 16, top_p=1.0, max_len=max_len, generator=gen)
    assert len(samples) == 16
    for s in samples:
        assert G.is_valid(s), s
        assert len(s) <= max_len


def test_kv_cache_logits_equal_full_recompute():
    for kind in ("primitive", "image-primitive"):
        model = tiny_primitive(kind).eval()
        seqs = sample_primitives(model, 4, top_p=1.0, generator=torch.Generator().manual_seed(0),
                                 image=torch.rand(4, 1, 128, 128) if kind != "primitive" else None)
        b = primitive_batch(G, seqs)
        memory = model.encode_image(torch.rand(4, 1, 128, 128)) if kind != "primitive" else None
        with torch.no_grad():
            full = model(b["val"], b["coord"], b["pos"], memory=memory)
            cache = model.new_cache(4)
            steps = [model(b["val"][:, :3], b["coord"][:, :3], b["pos"][:, :3], memory=memory, cache=cache)]
            for i in range(3, b["val"].shape[1]):
                steps.append(model(b["val"][:, i : i + 1], b["coord"][:, i : i + 1], b["pos"][:, i : i + 1], cache=cache))
        assert torch.allclose(full, torch.cat(steps, 1), atol=1e-5)


def test_cached_and_uncached_sampling_agree():
    model = tiny_primitive()
    a = sample_primitives(model, 6, top_p=None, use_cache=True, max_len=60)
    b = sample_primitives(model, 6, top_p=None, use_cache=False, max_len=60)
    assert a == b
    cm = tiny_constraint()
    assert infer_constraints(cm, a, use_cache=True) == infer_constraints(cm, a, use_cache=False)


def test_primers_are_kept_and_completed():
    model = tiny_primitive()
    primer = G.encode(SKETCH[:2])[:-1]
    out = sample_primitives(model, 5, primers=[primer], generator=torch.Generator().manual_seed(3))
    for s in out:
        assert s[: len(primer)] == primer and G.is_valid(s)
    # primers of different lengths in one batch
    p2 = G.encode(SKETCH[:1])[:-1]
    out = sample_primitives(model, 2, primers=[primer, p2], generator=torch.Generator().manual_seed(3))
    assert out[0][: len(primer)] == primer and out[1][: len(p2)] == p2


@pytest.mark.parametrize("primer", [[1, 5, 10], [2], [1, 5, 10, 11, 12, 13, 71, 2], [1, 99]])
def test_bad_primer_is_a_clear_error(primer):
    with pytest.raises(QuintetError):
        sample_primitives(tiny_primitive(), 2, primers=[primer])


def test_bad_images_are_clear_errors():
    model = tiny_primitive("image-primitive")
    with pytest.raises(QuintetError, match="128"):
        sample_primitives(model, 1, image=torch.rand(1, 1, 64, 64))
    with pytest.raises(QuintetError, match="grey"):
        sample_primitives(model, 1, image=torch.rand(1, 3, 128, 128))
    with pytest.raises(QuintetError, match="image"):
        sample_primitives(model, 1)
    with pytest.raises(QuintetError, match="not image-conditioned"):
        sample_primitives(tiny_primitive(), 1, image=torch.rand(1, 1, 128, 128))
    enc = ImageEncoder(16, 1, 2, 32)
    assert enc(torch.zeros(2, 1, 128, 128, dtype=torch.uint8)).shape == (2, 64, 16)
    # patches are 16×16 blocks in row-major order
    img = torch.zeros(1, 1, 128, 128)
    img[0, 0, 16:32, 32:48] = 1.0
    p = enc.patches(img)
    assert p.shape == (1, 64, 256) and p[0].sum(-1).nonzero().flatten().tolist() == [1 * 8 + 2]


def _constraint_batch(seqs, cons):
    b = primitive_batch(G, seqs)
    toks = [CG.encode(c) for c in cons]
    T = max(len(t) for t in toks)
    c_tok = torch.zeros(len(seqs), T, dtype=torch.long)
    c_coord, c_pos = torch.zeros_like(c_tok), torch.zeros_like(c_tok)
    for i, t in enumerate(toks):
        c, p = CG.streams(t)
        c_tok[i, : len(t)], c_coord[i, : len(t)], c_pos[i, : len(t)] = torch.tensor(t), torch.tensor(c), torch.tensor(p)
    b.update(c_tok=c_tok, c_coord=c_coord, c_pos=c_pos)
    return b


# constraints of SKETCH: line0 end (pos 4) coincident with line1 start (pos 8), line0 horizontal
CONS = [(CG.type_names.index("coincident"), [4, 8]), (CG.type_names.index("horizontal"), [1]), (CG.type_names.index("perpendicular"), [1, 7])]


def test_pointer_targets_and_ref_mask():
    seqs = [G.encode(SKETCH)]
    b = _constraint_batch(seqs, [CONS])
    ref = b["ref_mask"][0].nonzero().flatten().tolist()
    # line at 1 (refs 1, 2, 4), line at 7 (7, 8, 10), circle at 13 (13, 14), point at 18
    assert ref == [1, 2, 4, 7, 8, 10, 13, 14, 18]
    t = b["c_tok"][0]
    refs = t[t >= CG.n_special] - CG.n_special
    assert refs.tolist() == [4, 8, 1, 1, 7]
    assert all(b["ref_mask"][0, r] for r in refs)
    assert CG.decode(t.tolist()) == CONS
    model = tiny_constraint()
    logits = model(b["c_tok"], b["c_coord"], b["c_pos"], model.encode(b["val"], b["coord"], b["pos"]), b["ref_mask"])
    assert logits.shape == (1, b["c_tok"].shape[1], CG.n_special + b["val"].shape[1])
    assert torch.isinf(logits[0, :, CG.n_special:][:, ~b["ref_mask"][0]]).all()
    masks = model.grammar_masks(b["c_tok"], b["ref_mask"])
    targets = b["c_tok"][:, 1:]
    assert masks.gather(-1, targets[..., None]).all()  # every true target is allowed
    # after a horizontal with one reference, a second reference or a new constraint may follow
    state = ConstraintDecodeState(CG, b["ref_mask"], 100)
    for tok in t[1:6]:
        state.advance(tok[None])
    allowed = state.allowed()[0]
    assert allowed[CG.n_special + 7] and allowed[2] and allowed[CG.type_token(0)]


def test_inferred_constraints_are_in_range():
    seqs = sample_primitives(tiny_primitive(), 6, generator=torch.Generator().manual_seed(5))
    out = infer_constraints(tiny_constraint(), seqs, top_p=1.0, generator=torch.Generator().manual_seed(0), max_len=40)
    for s, cons in zip(seqs, out):
        ref = primitive_batch(G, [s])["ref_mask"][0]
        for k, refs in cons:
            lo, hi = CG.arity[k]
            assert lo <= len(refs) <= hi
            assert all(0 <= r < len(s) and ref[r] for r in refs)


def _typed(*cons: tuple[str, list[int]]) -> list[tuple[int, list[int]]]:
    return [(CG.type_names.index(name), refs) for name, refs in cons]


def test_dedupe_removes_repeats_in_either_order_only_for_symmetric_types():
    from quintet.sketch.constraints import Constraint, ConstraintType, Ref
    from quintet.sketch.models.data import constraint_tokens, tokens_to_sketch

    # positions in G.encode(SKETCH): line0 1 (start 2, end 4), line1 7 (start 8), circle 13, point 18
    toks = constraint_tokens(_typed(
        ("coincident", [4, 8]), ("coincident", [8, 4]),
        ("midpoint", [18, 1]), ("midpoint", [1, 18]), ("midpoint", [18, 1]),
        ("horizontal", [1]), ("horizontal", [1]), ("horizontal", [2, 18]), ("horizontal", [18, 2]),
        ("tangent", [7, 13]), ("tangent", [13, 7]), ("perpendicular", [1, 7]),
    ))
    kept, removed = dedupe_constraints(CG.decode(toks), CG)
    assert removed == 5
    assert kept == _typed(("coincident", [4, 8]), ("midpoint", [18, 1]), ("midpoint", [1, 18]), ("horizontal", [1]),
                          ("horizontal", [2, 18]), ("tangent", [7, 13]), ("perpendicular", [1, 7]))
    T = ConstraintType
    line0, line0_start, line0_end, line1 = Ref(0), Ref(0, "start"), Ref(0, "end"), Ref(1)
    assert tokens_to_sketch(G.encode(SKETCH), constraint_tokens(kept)).constraints == [
        Constraint(T.COINCIDENT, (line0_end, Ref(1, "start"))),
        Constraint(T.MIDPOINT, (Ref(3), line0)),
        Constraint(T.MIDPOINT, (line0, Ref(3))),
        Constraint(T.HORIZONTAL, (line0,)),
        Constraint(T.HORIZONTAL, (line0_start, Ref(3))),
        Constraint(T.TANGENT, (line1, Ref(2))),
        Constraint(T.PERPENDICULAR, (line0, line1)),
    ]
    assert dedupe_constraints([], CG) == ([], 0)


def test_inferred_constraints_are_deduplicated_after_decoding():
    seqs = sample_primitives(tiny_primitive(), 6, generator=torch.Generator().manual_seed(5))
    raw = infer_constraints(tiny_constraint(), seqs, dedupe=False, max_len=60)  # greedy
    out = infer_constraints(tiny_constraint(), seqs, max_len=60)
    assert sum(dedupe_constraints(c, CG)[1] for c in raw) == 61  # the untrained greedy decoder repeats itself
    assert out == [dedupe_constraints(c, CG)[0] for c in raw]
    assert all(dedupe_constraints(c, CG)[1] == 0 for c in out)


def test_losses_decrease_on_tiny_overfit_set():
    seqs = [G.encode(SKETCH), G.encode(SKETCH[1:3])]
    b = _constraint_batch(seqs, [CONS, [(CG.type_names.index("tangent"), [1, 7])]])
    for model in (tiny_primitive(), tiny_constraint()):
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        first = None
        for _ in range(60):
            loss, n = model.loss(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
        assert loss.item() < 0.3 * first, (first, loss.item())
    acc = model.accuracy(b)
    assert acc[0] == acc[1]  # the constraint model has memorised both sequences


def test_noise_moves_only_coordinates_a_little():
    toks = torch.tensor([G.encode(SKETCH)] * 200)
    noisy = perturb_bins(toks, G, generator=torch.Generator().manual_seed(0))
    is_bin = (toks >= G.bin_offset) & (toks < G.flag_offset)
    assert torch.equal(noisy[~is_bin], toks[~is_bin])
    d = (noisy - toks)[is_bin]
    assert d.abs().max() <= 2 and d.ne(0).float().mean() > 0.3
    assert abs(d.float().mean()) < 0.1


def test_checkpoint_roundtrip_and_wrong_kind(tmp_path):
    model = tiny_primitive()
    save_model(tmp_path / "prim", model, step=3)
    loaded = load_model(tmp_path / "prim", "primitive")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(QuintetError, match="'primitive' model"):
        load_model(tmp_path / "prim", "constraint")
    with pytest.raises(QuintetError, match="does not exist"):
        load_model(tmp_path / "nothing", "primitive")


def test_image_encoder_tells_drawings_apart_at_initialisation():
    """Strokes on white paper must not vanish into a constant patch embedding (the earlier ``x − 0.5``
    shift made the encoder collapse to one output for every image): at initialisation the spread
    of the encodings across a batch of sparse stroke images is a sizeable part of their spread
    (0.24 at this seed; 0.05 with the old shift)."""
    torch.manual_seed(0)
    img = torch.zeros(8, 1, 128, 128)
    for i in range(8):  # a thin horizontal stroke at a different height in each image
        img[i, 0, 10 + 14 * i, 20:100] = 1.0
    enc = ImageEncoder(32, 1, 2, 64)
    with torch.no_grad():
        mem = enc(img)
    assert mem.std(0).mean() / mem.std() > 0.15


def test_init_from_unconditional_copies_the_decoder():
    from quintet.sketch.models import init_from_unconditional

    prim, img = tiny_primitive(seed=1), tiny_primitive("image-primitive", seed=2)
    fresh = init_from_unconditional(img, prim)
    assert fresh and all(k.startswith("image_encoder") or ".cross." in k or ".ln_x." in k for k in fresh)
    ps, is_ = prim.state_dict(), img.state_dict()
    assert all(torch.equal(ps[k], is_[k]) for k in ps)
    with pytest.raises(ValueError, match="copies a 'primitive'"):
        init_from_unconditional(prim, img)
    other = PrimitiveModel(PrimitiveModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=128))
    with pytest.raises(ValueError, match="sizes differ"):
        init_from_unconditional(tiny_primitive("image-primitive"), other)
