"""The segmentation loops (ERM, memory only, MLDG, Pin the Memory) under ``accelerate launch`` on 2 CPU
processes (gloo) against one process (tests/distributed/seg_scenarios.py).

Each source domain's batch of 5 frames splits 3 + 2, the unseen domain's 7 frames 4 + 3, and every
frame has a void rectangle of its own size (so the shards count different pixels). Asserted: with
batch norm on fixed statistics and no dropout, the parameters, memory slots, loss history and
unseen-domain mIoU equal one process's; with batch norm as released, both processes hold the same
model and its evaluation equals one process's evaluation of those weights; process 1 writes
nothing; a run whose second process dies resumes on both from the last checkpoint and ends where
an uninterrupted run ends.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from quintet.core.distributed import Dist
from quintet.core.errors import QuintetError

HERE = Path(__file__).parent / "distributed"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).parent))

import seg_scenarios  # noqa: E402
from test_distributed import assert_same_metrics, check_loop, launch, outcome  # noqa: E402

FROZEN = ["seg_erm_frozen", "seg_memory_frozen", "seg_mldg_frozen", "seg_pinmem_frozen"]
BATCH_NORM = ["seg_erm", "seg_pinmem"]
SCRIPT = HERE / "seg_scenarios.py"


# ---------------------------------------------------------------------------------- one process
def test_one_process_loss_is_the_plain_loss():
    """In one process the pixel share is the pixel mean and the loss is the one-process loss."""
    from quintet.segmentation.losses import LossWeights, total_loss
    from quintet.segmentation.parallel import all_reduce_sum, pixel_cross_entropy

    logits = torch.randn(3, 4, 6, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 4, (3, 6, 5), generator=torch.Generator().manual_seed(1))
    labels[0, :3] = 255
    loss, value = pixel_cross_entropy(logits, labels, Dist())
    assert torch.equal(loss, F.cross_entropy(logits, labels, ignore_index=255)) and value == float(loss)
    out = {"logits": logits}
    assert total_loss(out, labels, LossWeights(), dist=Dist())[1] == total_loss(out, labels, LossWeights())[1]
    assert all_reduce_sum(Dist(), logits) is logits


def test_batch_too_small_for_the_processes_is_refused(monkeypatch):
    import quintet.segmentation.experiments as experiments

    monkeypatch.setattr(experiments, "current", lambda: Dist(0, 2))
    sources, _ = seg_scenarios.domains()
    with pytest.raises(QuintetError, match="batch 3 frames per domain cannot be split over 2 processes"):
        experiments.train(experiments.TrainConfig(batch=3, steps=1), sources)


# ---------------------------------------------------------------------------------- two processes
@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg_two")
    launch(out, *FROZEN, *BATCH_NORM, script=SCRIPT)
    return out


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg_one")
    torch.set_num_threads(1)
    for name in [*FROZEN, *BATCH_NORM]:
        seg_scenarios.run(name, out / name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", FROZEN)
def test_fixed_batch_norm_two_processes_equal_one(name, two, one):
    """Parameters and memory slots to 1e-6, loss history and unseen mIoU to 1e-5 relative."""
    check_loop(two / name, one / name, 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCH_NORM)
def test_batch_norm_processes_train_one_model(name, two, one):
    """Batch statistics of each process's rows: the same model on both processes (parameters,
    running statistics, memory slots), evaluated as one process evaluates those weights."""
    check_loop(two / name, one / name, None)
    params, record = outcome(two / name, 0)
    alone, _ = outcome(one / name, 0)
    assert any(not torch.allclose(params[k], alone[k], atol=1e-4) for k in params if params[k].is_floating_point())
    from quintet.segmentation.experiments import evaluate

    method, frozen = seg_scenarios.SCENARIOS[name]
    model = seg_scenarios.build(method, frozen)
    model.load_state_dict(params)
    _, target = seg_scenarios.domains()
    assert_same_metrics(record["metrics"]["target"], evaluate(model.eval(), target, dist=Dist()))


@pytest.mark.slow
def test_crash_on_one_rank_resumes_on_both(tmp_path, two):
    """Process 1 dies after its third step of Pin the Memory (checkpoints every 2 steps): the
    relaunch resumes both from step 2 and ends with the model of the uninterrupted run."""
    crashed = launch(tmp_path, "seg_pinmem", "--kill-after", "3", check=False, script=SCRIPT)
    assert crashed.returncode != 0 and re.search(r"exitcode\s*:\s*3", crashed.stdout + crashed.stderr)
    assert (tmp_path / "seg_pinmem" / "run" / "latest").read_text().strip() == "checkpoint-00000002"
    launch(tmp_path, "seg_pinmem", script=SCRIPT)
    resumed, record = outcome(tmp_path / "seg_pinmem", 0)
    other, record1 = outcome(tmp_path / "seg_pinmem", 1)
    whole, single = outcome(two / "seg_pinmem", 0)
    assert record1["writes"] == []
    assert [w for w in record["writes"] if "checkpoint-00000002" in w] == []
    for key in whole:
        assert torch.equal(resumed[key], other[key]), key
        torch.testing.assert_close(resumed[key], whole[key], atol=1e-6, rtol=0, msg=key)
    assert_same_metrics(record["metrics"], single["metrics"])


@pytest.mark.slow
def test_command_line_training_under_accelerate_launch(tmp_path, data_dir):
    """`accelerate launch ... quintet segment train` on CamVid: one progress bar, one table, one
    results.json whose unseen-domain mIoU is one process's evaluation of the saved checkpoint."""
    import json

    from quintet.segmentation.data import camvid_domains
    from quintet.segmentation.experiments import evaluate, load_model

    quintet = Path(sys.executable).parent / "quintet"
    done = launch(None, "segment", "train", "--method", "pinmem", "--steps", "2", "--batch", "4", "--width", "4",
                  "--checkpoint-every", "1", "--out", str(tmp_path / "run"), script=quintet)
    assert done.stdout.count("| domain |") == 1 and done.stdout.count("checkpoint:") == 1
    assert done.stderr.count("segment pinmem:   0%") == 1
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "checkpoint-00000002"
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]["unseen"]
    model, _ = load_model(tmp_path / "run" / "checkpoints")
    domains = camvid_domains(data_dir)
    for row in rows:
        alone = evaluate(model, domains[row["domain"]], dist=Dist())  # other chunks of 16 frames: float order
        assert_same_metrics({"miou": row["miou"], "pixel_acc": row["pixel_acc"]},
                            {"miou": alone["miou"], "pixel_acc": alone["pixel_acc"]})
