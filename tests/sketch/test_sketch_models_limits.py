"""Tests of the models' limits and placement: the primitive cap of decoding, primers and position
embeddings; evaluation batches on the model's device (CUDA where there is one); the two-stage
start of the image model from the CLI; the documented primer frame."""

from __future__ import annotations

import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Sketch, save_sketch
from quintet.sketch.models import (
    ConstraintGrammar,
    ConstraintModel,
    ConstraintModelConfig,
    PrimitiveDecodeState,
    PrimitiveGrammar,
    PrimitiveModel,
    PrimitiveModelConfig,
    load_model,
    save_model,
)
from quintet.sketch.models.metrics import constraint_accuracy, model_bits
from quintet.sketch.models.sample import (
    infer_constraints,
    on_model_device,
    primitive_batch,
    sample_primitives,
)
from quintet.sketch.models.train import constraint_batch
from quintet.sketch.primitives import Line

G = PrimitiveGrammar()
TINY = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64)
LINE = 2  # type index of a line
THREE_LINES = [(LINE, [1, 2, 30, 2], False), (LINE, [30, 2, 30, 40], False), (LINE, [30, 40, 1, 2], False)]
# line 0's end coincident with line 1's start (token positions 4 and 8); line 0 horizontal
CONS = [ConstraintGrammar().encode([(0, [4, 8]), (4, [1])])]


def tiny_primitive(max_primitives: int = 16, kind: str = "primitive", seed: int = 0) -> PrimitiveModel:
    torch.manual_seed(seed)
    return PrimitiveModel(PrimitiveModelConfig(kind=kind, image_layers=1, max_primitives=max_primitives, **TINY))


def tiny_constraint(max_primitives: int = 16, seed: int = 0) -> ConstraintModel:
    torch.manual_seed(seed)
    return ConstraintModel(ConstraintModelConfig(n_encoder_layers=1, max_primitives=max_primitives, **TINY))


# ---- the primitive cap (max_primitives) ---------------------------------------------------------


def test_decode_state_allows_only_stop_at_max_primitives():
    toks = torch.tensor([G.encode(THREE_LINES[:2])[:-1]])  # Start + two complete lines
    state = PrimitiveDecodeState(G, 1, max_len=1000, max_primitives=2)
    for t in range(1, toks.shape[1]):
        allowed = state.allowed()[0]
        if t == 1:  # before the first primitive a type may come
            assert allowed[G.type_offset : G.bin_offset].all()
        state.advance(toks[:, t])
    allowed = state.allowed()[0]
    assert allowed.nonzero().flatten().tolist() == [2]  # Stop only
    unbounded = PrimitiveDecodeState(G, 1, max_len=1000)
    for t in range(1, toks.shape[1]):
        unbounded.advance(toks[:, t])
    assert unbounded.allowed()[0, G.type_offset : G.bin_offset].all()


def test_sampling_stops_at_max_primitives():
    model = tiny_primitive(max_primitives=2)
    samples = sample_primitives(model, 32, top_p=1.0, generator=torch.Generator().manual_seed(0))
    counts = [len(G.decode(s)) for s in samples]
    assert max(counts) == 2  # random weights rarely choose Stop: the cap is what ends them
    # completions of a primer that already holds the maximum are just Stop
    primer = G.encode(THREE_LINES[:2])[:-1]
    out = sample_primitives(model, 3, primers=[primer], generator=torch.Generator().manual_seed(1))
    assert out == [primer + [2]] * 3


def test_primer_with_too_many_primitives_is_a_clear_error():
    with pytest.raises(QuintetError, match="3 primitives, but the model supports at most 2"):
        sample_primitives(tiny_primitive(max_primitives=2), 1, primers=[G.encode(THREE_LINES)[:-1]])


def test_positions_beyond_the_embedding_are_an_error_not_clamped():
    model = tiny_primitive(max_primitives=2)
    # the 4th primitive's tokens have position id 4 + 1 = 5; the table has max_primitives + 3 = 5 rows
    b = primitive_batch(G, [G.encode(THREE_LINES + THREE_LINES[:1])])
    with pytest.raises(QuintetError, match="position id 5 outside the model's 0..4"):
        model.token_nll(b["val"], b["coord"], b["pos"])
    with pytest.raises(QuintetError, match="3 primitives exceeds the constraint model's 2"):
        infer_constraints(tiny_constraint(max_primitives=2), [G.encode(THREE_LINES)])


def test_generate_refuses_a_primer_larger_than_the_model(tmp_path):
    from quintet.sketch.models.cli import generate

    torch.manual_seed(0)
    root = tmp_path / "models"
    save_model(root / "primitive", PrimitiveModel(PrimitiveModelConfig(**TINY)), step=1)
    save_model(root / "constraint", ConstraintModel(ConstraintModelConfig(**TINY, n_encoder_layers=1)), step=1)
    save_sketch(Sketch([Line(i, 0, i + 0.5, 1) for i in range(17)], []), tmp_path / "big.json")
    with pytest.raises(QuintetError, match="17 primitives, but the model supports at most 16"):
        generate(tmp_path / "out", primer=tmp_path / "big.json", n=1, models=root)


# ---- devices --------------------------------------------------------------------------------------


def test_on_model_device_follows_the_parameters():
    with torch.device("meta"):
        model = torch.nn.Linear(2, 2)
    b = on_model_device({"val": torch.zeros(2, 3, dtype=torch.long), "image": torch.zeros(2, 1, 4, 4)}, model)
    assert {v.device.type for v in b.values()} == {"meta"}
    assert b["val"].dtype == torch.long and b["image"].shape == (2, 1, 4, 4)


def test_constraint_accuracy_equals_one_batch_evaluation():
    cons = tiny_constraint()
    pvals = [G.encode(THREE_LINES)] * 3
    cvals = CONS * 3
    acc = constraint_accuracy(cons, G, pvals, cvals, batch_size=2)
    a = cons.accuracy(constraint_batch(G, pvals, cvals))
    assert (acc["tokens"], acc["references"]) == (a[1], a[3]) == (18, 9)
    assert acc["accuracy"] == pytest.approx(a[0] / a[1]) and acc["pointer_accuracy"] == pytest.approx(a[2] / a[3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluation_paths_run_on_the_gpu_with_cpu_batches():
    """After ``train`` (accelerate puts the models on the GPU) every evaluation helper gets CPU
    batches, CPU images and a CPU generator; each must move them to the model's device."""
    from quintet.sketch.models.train import TrainConfig, constraint_batches, train

    pvals, cvals = [G.encode(THREE_LINES)] * 4, CONS * 4
    cons = tiny_constraint()
    train(cons, constraint_batches(G, pvals, cvals, 2), TrainConfig(steps=2, warmup=1, progress=False))
    assert next(cons.parameters()).device.type == "cuda"
    cpu_cons = tiny_constraint()
    cpu_cons.load_state_dict({k: v.cpu() for k, v in cons.state_dict().items()})
    gpu_acc = constraint_accuracy(cons, G, pvals, cvals, noise_std=0.15, generator=torch.Generator().manual_seed(0))
    cpu_acc = constraint_accuracy(cpu_cons, G, pvals, cvals, noise_std=0.15, generator=torch.Generator().manual_seed(0))
    assert gpu_acc["tokens"] == cpu_acc["tokens"] and gpu_acc["accuracy"] == pytest.approx(cpu_acc["accuracy"], abs=0.1)
    for use_cache in (True, False):
        assert len(infer_constraints(cons, pvals, use_cache=use_cache)) == 4
    prim = tiny_primitive().cuda()
    img = tiny_primitive(kind="image-primitive").cuda()
    images = torch.rand(4, 1, 128, 128)
    cpu_bits = model_bits(tiny_primitive(), pvals)["bits_per_primitive"]
    assert model_bits(prim, pvals)["bits_per_primitive"] == pytest.approx(cpu_bits, rel=1e-3)
    assert model_bits(img, pvals, images=images)["bits_per_primitive"] > 0
    gen = torch.Generator().manual_seed(0)
    for use_cache in (True, False):
        s = sample_primitives(prim, 4, primers=[G.encode(THREE_LINES[:1])[:-1]], use_cache=use_cache, generator=gen)
        s += sample_primitives(img, 4, image=images, use_cache=use_cache, generator=gen)
        assert all(G.is_valid(x) for x in s)


# ---- the image model's two-stage start from the CLI -------------------------------------------------


def test_train_image_model_from_a_primitive_checkpoint(tmp_path):
    from quintet.sketch.models.cli import train_model

    common = dict(steps=1, n_train=8, batch_size=4, d_model=32, n_layers=1, n_heads=2, progress=False)
    train_model("primitive", tmp_path / "p", **common)
    # a learning rate of 1e-9: one step leaves the copied decoder where it started
    train_model("image", tmp_path / "i", lr=1e-9, image_layers=1, init_from=tmp_path / "p", **common)
    prim, img = load_model(tmp_path / "p", "primitive"), load_model(tmp_path / "i", "image-primitive")
    assert img.config.image_layers == 1 and len(img.image_encoder.blocks) == 1
    ps, is_ = prim.state_dict(), img.state_dict()
    assert all(torch.allclose(ps[k], is_[k], atol=1e-6) for k in ps)
    train_model("image", tmp_path / "scratch", lr=1e-9, image_layers=1, **common)
    fresh = load_model(tmp_path / "scratch", "image-primitive").state_dict()
    assert not torch.allclose(ps["head.weight"], fresh["head.weight"], atol=1e-3)
    with pytest.raises(QuintetError, match="same --d-model"):
        train_model("image", tmp_path / "j", init_from=tmp_path / "p", **{**common, "d_model": 64})
    with pytest.raises(QuintetError, match="'image-primitive' model"):
        train_model("image", tmp_path / "k", init_from=tmp_path / "i", **common)
    with pytest.raises(QuintetError, match="--init-from"):
        train_model("constraint", tmp_path / "c", init_from=tmp_path / "p", **common)


def test_cli_help_documents_init_from_and_the_primer_frame():
    from typer.testing import CliRunner

    from quintet.sketch.cli import app

    runner = CliRunner()
    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "--init-from" in train_help and "--image-layers" in train_help
    gen_help = " ".join(runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "bounding box" in gen_help
