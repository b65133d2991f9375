"""Tiny runs of the Vitruvion training loop (``quintet.sketch.models.train``), for the 2-process
launch and the 1-process reference in tests/test_distributed_sketch.py.

Run as a script under ``accelerate launch``: ``sketch_scenarios.py OUT SCENARIO... [--steps N]
[--kill-after N]`` trains each scenario into ``OUT/<scenario>``; ``--kill-after N`` ends process 1
abruptly after its N-th optimiser step. Each process records what it ended with (parameters,
metrics, the files the library wrote) as ``OUT/<scenario>/rank<r>.safetensors`` and ``.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from dist_scenarios import record, visible_adam, written_files  # noqa: E402

#: the model sizes of the tests: width 16, one layer, no dropout
TINY = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0)


def _data():
    """27 procedural sketches: 20 to train on, 7 to validate (4 + 3 on 2 processes)."""
    from quintet.sketch.models.experiment import procedural_sketches, tokenize_all

    pvals, cvals = tokenize_all(procedural_sketches(27, 0))
    return pvals[:20], cvals[:20], pvals[20:27]


def _summary(result: dict) -> dict:
    return {k: result[k] for k in ("history", "validation", "best_step", "stopped_at", "resumed_from")}


def sketch_primitive(out: Path, steps: int = 4) -> tuple[torch.nn.Module, dict]:
    """Primitive model: batches of 5 sketches (3 + 2 rows), validation bits every 2 steps on 7
    sketches (4 + 3), checkpoints every 2 steps."""
    from quintet.core.distributed import current
    from quintet.sketch.models import PrimitiveGrammar, PrimitiveModel, PrimitiveModelConfig
    from quintet.sketch.models.metrics import model_bits
    from quintet.sketch.models.train import TrainConfig, primitive_batches, train

    train_p, _, valid_p = _data()
    torch.manual_seed(0)
    model = PrimitiveModel(PrimitiveModelConfig(**TINY))
    cfg = TrainConfig(steps=steps, batch_size=5, lr=3e-3, warmup=2, checkpoint_every=2, validate_every=2,
                      patience=10, cpu=True, progress=False)

    def validate(m):
        return model_bits(m, valid_p, dist=current())["bits_per_primitive"]

    result = train(model, primitive_batches(PrimitiveGrammar(), train_p, 5, seed=0), cfg, out / "run",
                   description="primitive", validate=validate)
    return model, _summary(result)


def sketch_constraint(out: Path, steps: int = 3) -> tuple[torch.nn.Module, dict]:
    """Constraint model: batches of 5 noisy sketches (3 + 2 rows), checkpoints every 2 steps."""
    from quintet.sketch.models import ConstraintModel, ConstraintModelConfig, PrimitiveGrammar
    from quintet.sketch.models.train import TrainConfig, constraint_batches, train

    train_p, train_c, _ = _data()
    torch.manual_seed(0)
    model = ConstraintModel(ConstraintModelConfig(**TINY, n_encoder_layers=1))
    cfg = TrainConfig(steps=steps, batch_size=5, lr=3e-3, warmup=2, checkpoint_every=2, cpu=True, progress=False)
    result = train(model, constraint_batches(PrimitiveGrammar(), train_p, train_c, 5, seed=0), cfg, out / "run",
                   description="constraint")
    return model, _summary(result)


def sketch_image(out: Path, steps: int = 2) -> tuple[torch.nn.Module, dict]:
    """Image-conditioned primitive model (one ViT layer): batches of 5 rendered sketches (3 + 2)."""
    from quintet.sketch.models import PrimitiveGrammar, PrimitiveModel, PrimitiveModelConfig
    from quintet.sketch.models.experiment import render_batch
    from quintet.sketch.models.train import TrainConfig, primitive_batches, train

    train_p, _, _ = _data()
    torch.manual_seed(0)
    model = PrimitiveModel(PrimitiveModelConfig(kind="image-primitive", image_layers=1, **TINY))
    cfg = TrainConfig(steps=steps, batch_size=5, lr=3e-3, warmup=2, checkpoint_every=2, cpu=True, progress=False)
    make = primitive_batches(PrimitiveGrammar(), train_p, 5, seed=0,
                             images=lambda idx, step: render_batch([train_p[i] for i in idx], step))
    result = train(model, make, cfg, out / "run", description="image")
    return model, _summary(result)


SCENARIOS = {"sketch_primitive": sketch_primitive, "sketch_constraint": sketch_constraint,
             "sketch_image": sketch_image}


def run(name: str, out: Path, **kwargs) -> None:
    from quintet.core.distributed import current

    rank = current().rank
    with written_files() as writes, visible_adam():
        model, metrics = SCENARIOS[name](out, **kwargs)
    record(out, rank, model, metrics, writes)


if __name__ == "__main__":
    from dist_worker import launch_main

    launch_main(run)
