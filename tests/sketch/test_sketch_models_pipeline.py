"""Tests of the models' data path (sketch <-> tokens, renderings, PNG input), the training loop
(resume) and the end-to-end ``generate`` pipeline with tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, Ref, Sketch, save_sketch
from quintet.sketch.models import (
    ConstraintModel,
    ConstraintModelConfig,
    PrimitiveGrammar,
    PrimitiveModel,
    PrimitiveModelConfig,
    save_model,
)
from quintet.sketch.models.data import (
    load_png,
    render_uint8,
    save_png,
    sketch_to_tokens,
    tokens_to_sketch,
)
from quintet.sketch.models.metrics import lzma_bits, match_primitives, model_bits, uniform_bits
from quintet.sketch.models.train import TrainConfig, constraint_batches, primitive_batches, train
from quintet.sketch.primitives import Arc, Circle, Line, Point

G = PrimitiveGrammar()
TINY = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64)


def sketch() -> Sketch:
    return Sketch(
        [Line(0, 0, 2, 0), Line(2, 0, 2, 1), Circle(1, 0.5, 0.3), Arc.from_center(0, 0, 1, 0.2, 1.5), Point(0.5, 0.5)],
        [
            Constraint("perpendicular", [Ref(1, "whole"), Ref(0, "whole")]),
            Constraint("coincident", [Ref(0, "end"), Ref(1, "start")]),
            Constraint("horizontal", [Ref(0, "whole")]),
        ],
        name="t",
    )


def test_sketch_tokens_roundtrip_and_canonical_order():
    p, c = sketch_to_tokens(sketch())
    assert G.is_valid(p) and len(G.decode(p)) == 5
    back = tokens_to_sketch(p, c)
    assert [q.type for q in back.primitives] == ["line", "line", "circle", "arc", "point"]
    # sorted by the last position referenced: horizontal (1), perpendicular (7), coincident (8)
    assert [k.type.value for k in back.constraints] == ["horizontal", "perpendicular", "coincident"]
    assert back.constraints[2].refs == (Ref(0, "end"), Ref(1, "start"))
    assert sketch_to_tokens(back) == (p, c)  # quantised sketches are fixed points


def test_degenerate_primitives_do_not_parse():
    p = G.encode([(2, [10, 10, 10, 10], False)])  # zero-length line
    with pytest.raises(QuintetError, match="zero length"):
        tokens_to_sketch(p)


def test_rendering_and_png_io(tmp_path):
    img = render_uint8(sketch(), 0)
    other = render_uint8(sketch(), 1)
    assert img.shape == (128, 128) and img.dtype == np.uint8 and img.max() == 255
    assert 0.005 < (img > 0).mean() < 0.2 and not np.array_equal(img, other)
    assert np.array_equal(img, render_uint8(sketch(), 0))
    save_png(tmp_path / "a.png", img)
    assert np.array_equal(load_png(tmp_path / "a.png"), img)  # white paper is inverted back

    from PIL import Image

    Image.new("RGB", (128, 128)).save(tmp_path / "rgb.png")
    with pytest.raises(QuintetError, match="mode RGB"):
        load_png(tmp_path / "rgb.png")
    Image.new("L", (64, 128)).save(tmp_path / "small.png")
    with pytest.raises(QuintetError, match="64×128"):
        load_png(tmp_path / "small.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(QuintetError, match="not a readable image"):
        load_png(tmp_path / "junk.png")


def test_baselines_and_bits_values():
    seqs = [sketch_to_tokens(sketch())[0]] * 3
    u = uniform_bits(seqs, G)
    # 5 primitives: 6 type/stop choices of log2(5), 19 coordinates of 6 bits, 5 flag bits
    expected = 6 * np.log2(5) + 19 * 6 + 5
    assert u["bits_per_sketch"] == pytest.approx(expected)
    assert u["bits_per_primitive"] == pytest.approx(expected / 5)
    assert lzma_bits(seqs, G)["bits_per_sketch"] < uniform_bits(seqs, G, grammar_aware=False)["bits_per_sketch"]
    torch.manual_seed(0)
    m = PrimitiveModel(PrimitiveModelConfig(**TINY))
    b = model_bits(m, seqs)
    assert b["bits_per_sketch"] == pytest.approx(5 * b["bits_per_primitive"])
    assert match_primitives([(2, [1, 2, 3, 4], False)], [(2, [2, 3, 4, 6], False)]) == 1
    assert match_primitives([(2, [1, 2, 3, 4], False)], [(2, [4, 3, 4, 6], False)]) == 0


def test_training_resumes_from_checkpoint(tmp_path):
    seqs = [sketch_to_tokens(sketch())[0]] * 8
    torch.manual_seed(0)
    m = PrimitiveModel(PrimitiveModelConfig(**TINY))
    r = train(m, primitive_batches(G, seqs, 4), TrainConfig(steps=6, warmup=1, checkpoint_every=3, progress=False), tmp_path)
    assert r["resumed_from"] == 0 and len(r["history"]) == 6
    m2 = PrimitiveModel(PrimitiveModelConfig(**TINY))
    r2 = train(m2, primitive_batches(G, seqs, 4), TrainConfig(steps=8, warmup=1, checkpoint_every=3, progress=False), tmp_path)
    assert r2["resumed_from"] == 6 and [h[0] for h in r2["history"]] == list(range(8))
    # a constraint model cannot resume from a primitive checkpoint
    c = ConstraintModel(ConstraintModelConfig(**TINY, n_encoder_layers=1))
    _, cv = sketch_to_tokens(sketch())
    with pytest.raises(QuintetError, match="checkpoint"):
        train(c, constraint_batches(G, seqs, [cv] * 8, 4), TrainConfig(steps=9, warmup=1, progress=False), tmp_path)


@pytest.fixture()
def tiny_models(tmp_path):
    torch.manual_seed(0)
    root = tmp_path / "models"
    save_model(root / "primitive", PrimitiveModel(PrimitiveModelConfig(**TINY, max_len=60)), step=1)
    save_model(root / "image", PrimitiveModel(PrimitiveModelConfig(kind="image-primitive", image_layers=1, **TINY, max_len=60)), step=1)
    save_model(root / "constraint", ConstraintModel(ConstraintModelConfig(**TINY, n_encoder_layers=1, max_constraint_len=20)), step=1)
    return root


def test_generate_end_to_end(tiny_models, tmp_path):
    from quintet.sketch.models.cli import generate

    save_sketch(Sketch([Line(0, 0, 1, 0), Line(1, 0, 1, 1)], []), tmp_path / "primer.json")
    r = generate(tmp_path / "out", primer=tmp_path / "primer.json", n=2, models=tiny_models)
    assert len(r["samples"]) == 2
    for s in r["samples"]:
        assert s["tokens"][:13] == sketch_to_tokens(Sketch([Line(0, 0, 1, 0), Line(1, 0, 1, 1)], []))[0][:-1]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary) == 2
    assert any((tmp_path / "out" / f).exists() for s in summary for f in s.get("files", []))
    save_png(tmp_path / "draw.png", render_uint8(sketch(), 1))
    r = generate(tmp_path / "out2", image=tmp_path / "draw.png", n=1, models=tiny_models)
    assert len(r["samples"]) == 1


def test_generate_bad_inputs_are_clear_errors(tiny_models, tmp_path):
    from PIL import Image

    from quintet.sketch.models.cli import generate

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(QuintetError):
        generate(tmp_path / "o", primer=tmp_path / "bad.json", models=tiny_models)
    (tmp_path / "empty.json").write_text(json.dumps({"primitives": [], "constraints": []}))
    with pytest.raises(QuintetError, match="no primitives"):
        generate(tmp_path / "o", primer=tmp_path / "empty.json", models=tiny_models)
    Image.new("RGB", (128, 128)).save(tmp_path / "rgb.png")
    with pytest.raises(QuintetError, match="mode RGB"):
        generate(tmp_path / "o", image=tmp_path / "rgb.png", models=tiny_models)
    Image.new("L", (100, 100)).save(tmp_path / "small.png")
    with pytest.raises(QuintetError, match="128×128"):
        generate(tmp_path / "o", image=tmp_path / "small.png", models=tiny_models)
    # a checkpoint of the wrong kind
    with pytest.raises(QuintetError, match="'constraint' model"):
        generate(tmp_path / "o", models=tiny_models, n=1,
                 **{"primitive_model": tiny_models / "constraint"})
    with pytest.raises(QuintetError, match="either --primer or --image"):
        generate(tmp_path / "o", primer=tmp_path / "bad.json", image=tmp_path / "rgb.png", models=tiny_models)
    with pytest.raises(QuintetError, match="does not exist"):
        generate(tmp_path / "o", models=tmp_path / "nowhere")


def test_reproduce_checkpoint_folder_is_keyed_by_configuration():
    from quintet.sketch.models.experiment import ModelsExperimentConfig

    a = ModelsExperimentConfig.for_scale(True, 0)
    assert a.key() == ModelsExperimentConfig.for_scale(True, 0).key() and a.key().startswith("quick-seed0-")
    b = ModelsExperimentConfig.for_scale(True, 0)
    b.image_steps += 1
    # a changed image recipe retrains the image model only; a changed scale trains all afresh
    assert b.key() == a.key() and b.image_key() != a.image_key()
    c = ModelsExperimentConfig.for_scale(True, 0)
    c.prim_steps += 1
    assert c.key() != a.key() and c.image_key() != a.image_key()


def test_image_checkpoint_folder_is_keyed_by_the_image_recipe(tmp_path):
    from quintet.sketch.models.experiment import image_checkpoint_dir

    a = image_checkpoint_dir(tmp_path, "aaaa")
    (a / "weights").write_text("A")
    b = image_checkpoint_dir(tmp_path, "bbbb")  # another recipe: A's folder moves aside
    assert b == a == tmp_path / "image" and not (b / "weights").exists()
    assert (tmp_path / "image-aaaa" / "weights").read_text() == "A"
    assert (image_checkpoint_dir(tmp_path, "aaaa") / "weights").read_text() == "A"  # and comes back
    assert (tmp_path / "image-bbbb").is_dir()


def _interrupt_at(make, step_to_stop: int):
    def make_batch(step: int):
        if step == step_to_stop:
            raise KeyboardInterrupt
        return make(step)
    return make_batch


def test_checkpoint_on_time_and_on_ctrl_c_resumes_exactly(tmp_path):
    seqs = [sketch_to_tokens(sketch())[0]] * 8
    cfg = TrainConfig(steps=6, warmup=1, checkpoint_every=1000, checkpoint_seconds=0.0, progress=False)
    torch.manual_seed(0)
    ref = PrimitiveModel(PrimitiveModelConfig(**TINY))
    torch.manual_seed(0)
    m = PrimitiveModel(PrimitiveModelConfig(**TINY))
    train(ref, primitive_batches(G, seqs, 4), cfg)
    # checkpoint_seconds=0: one after every step, although checkpoint_every is far away
    slow = TrainConfig(steps=6, warmup=1, checkpoint_every=1000, checkpoint_seconds=3600.0, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(m, _interrupt_at(primitive_batches(G, seqs, 4), 4), slow, tmp_path)
    assert (tmp_path / "latest").is_file()  # written on Ctrl-C, at step 4
    m2 = PrimitiveModel(PrimitiveModelConfig(**TINY))
    r = train(m2, primitive_batches(G, seqs, 4), slow, tmp_path)
    assert r["resumed_from"] == 4
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    timed = tmp_path / "timed"
    train(PrimitiveModel(PrimitiveModelConfig(**TINY)), _interrupt_at(primitive_batches(G, seqs, 4), 99), cfg, timed)
    assert sorted(p.name for p in timed.glob("checkpoint-*")) == ["checkpoint-00000005", "checkpoint-00000006"]  # keep=2


def test_early_stopping_keeps_the_best_weights(tmp_path):
    seqs = [sketch_to_tokens(sketch())[0]] * 8
    scores = iter([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])
    seen = {}

    def validate(model):
        value = next(scores)
        seen[value] = {k: v.clone() for k, v in model.state_dict().items()}
        return value

    torch.manual_seed(0)
    m = PrimitiveModel(PrimitiveModelConfig(**TINY))
    cfg = TrainConfig(steps=12, warmup=1, validate_every=2, patience=3, progress=False)
    r = train(m, primitive_batches(G, seqs, 4), cfg, tmp_path, validate=validate)
    assert r["best_step"] == 4 and r["stopped_at"] == 10
    assert [v for _, v in r["validation"]] == [3.0, 2.0, 2.5, 2.6, 2.7]
    for k, v in m.state_dict().items():
        assert torch.equal(v, seen[2.0][k]), k


def test_real_stage_keys_change_only_with_their_own_fields():
    """Changing one stage's steps names a new folder for that stage only, so finished stages are reused."""
    from quintet.core.errors import QuintetError
    from quintet.sketch.models.real_experiment import RealExperimentConfig

    a = RealExperimentConfig.for_scale(True, 0)
    b = RealExperimentConfig(**{**a.__dict__, "cons_steps": a.cons_steps + 1, "n_samples": 7})
    assert a.key("primitive") == b.key("primitive") and a.key("image") == b.key("image")
    assert a.key("constraint") != b.key("constraint")
    c = RealExperimentConfig(**{**a.__dict__, "seed": 1})
    assert all(a.key(s) != c.key(s) for s in ("primitive", "constraint", "image"))
    with pytest.raises(QuintetError, match="unknown stage"):
        a.key("decoder")
