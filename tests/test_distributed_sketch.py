"""The Vitruvion training loop under ``accelerate launch`` on 2 CPU processes (gloo) against one
process on the same global batches (tests/distributed/sketch_scenarios.py).

Asserted: both processes end with identical parameters, equal to the one-process run to float
tolerance; the loss history and the validation bits (scored in shares and summed over processes)
equal the one-process ones, so early stopping decides alike; only the main process writes, the
same files a one-process run writes; a run whose second process dies resumes on both from the last
complete checkpoint and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent / "distributed"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).parent))

import sketch_scenarios  # noqa: E402
from test_distributed import assert_same_metrics, launch, outcome  # noqa: E402

SCRIPT = HERE / "sketch_scenarios.py"
TOLERANCE = 5e-6


def test_shares_of_the_batch_and_of_the_validation_split():
    """In one process the batch is whole and the bits are those of the plain measure; the token
    weights of the shares add up to the number of processes."""
    from quintet.core.distributed import Dist
    from quintet.sketch.models import PrimitiveGrammar, PrimitiveModel, PrimitiveModelConfig
    from quintet.sketch.models.metrics import model_bits
    from quintet.sketch.models.train import primitive_batches, shard_batch

    train_p, _, valid_p = sketch_scenarios._data()
    batch = primitive_batches(PrimitiveGrammar(), train_p, 5)(0)
    assert all(a is b for a, b in zip(shard_batch(batch, Dist()).values(), batch.values()))
    parts = [shard_batch(batch, Dist(r, 2)) for r in range(2)]
    assert [len(p["val"]) for p in parts] == [3, 2]
    for key in batch:
        assert torch.equal(torch.cat([p[key] for p in parts]), batch[key]), key
    counts = [int((p["val"][:, 1:] != 0).sum()) for p in parts]
    assert sum(2 * n / sum(counts) for n in counts) == pytest.approx(2.0)
    torch.manual_seed(0)
    model = PrimitiveModel(PrimitiveModelConfig(**sketch_scenarios.TINY))
    assert model_bits(model, valid_p, dist=Dist()) == model_bits(model, valid_p)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sketch_two")
    launch(out, *sketch_scenarios.SCENARIOS, script=SCRIPT)
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sketch_one")
    for name in sketch_scenarios.SCENARIOS:
        sketch_scenarios.run(name, out / name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(sketch_scenarios.SCENARIOS))
def test_two_processes_equal_one(name, two_processes, one_process):
    params0, record0 = outcome(two_processes / name, 0)
    params1, record1 = outcome(two_processes / name, 1)
    alone, single = outcome(one_process / name, 0)
    assert params0.keys() == params1.keys() == alone.keys()
    for key in params0:
        assert torch.equal(params0[key], params1[key]), key
        torch.testing.assert_close(params0[key], alone[key], atol=TOLERANCE, rtol=0, msg=key)
    # loss history, validation bits and the early-stopping decisions: identical on both processes,
    # equal to one process
    assert record0["metrics"] == record1["metrics"]
    assert_same_metrics(record0["metrics"], single["metrics"])
    if name == "sketch_primitive":
        assert [s for s, _ in record0["metrics"]["validation"]] == [2, 4]
    # only the main process writes, and it writes what one process writes
    assert record1["writes"] == []
    assert record0["writes"] == single["writes"] != []


@pytest.mark.slow
def test_crash_on_one_rank_resumes_on_both(tmp_path):
    """Process 1 dies after step 3 (checkpoints every 2 steps): the relaunch resumes both processes
    from step 2 and ends with the parameters and validation bits of an uninterrupted 6-step run."""
    name = "sketch_primitive"
    crashed = launch(tmp_path / "two", name, "--steps", "6", "--kill-after", "3", check=False, script=SCRIPT)
    assert crashed.returncode != 0 and re.search(r"exitcode\s*:\s*3", crashed.stdout + crashed.stderr)
    run = tmp_path / "two" / name / "run"
    assert (run / "latest").read_text().strip() == "checkpoint-00000002"
    launch(tmp_path / "two", name, "--steps", "6", script=SCRIPT)
    resumed, record = outcome(tmp_path / "two" / name, 0)
    other, _ = outcome(tmp_path / "two" / name, 1)
    sketch_scenarios.run(name, tmp_path / "one" / name, steps=6)
    alone, single = outcome(tmp_path / "one" / name, 0)
    assert record["metrics"]["resumed_from"] == 2 and single["metrics"]["resumed_from"] == 0
    assert [w for w in record["writes"] if "checkpoint-00000002" in w] == []
    for key in alone:
        assert torch.equal(resumed[key], other[key]), key
        torch.testing.assert_close(resumed[key], alone[key], atol=TOLERANCE, rtol=0, msg=key)
    single["metrics"]["resumed_from"] = record["metrics"]["resumed_from"]
    assert_same_metrics(record["metrics"], single["metrics"])
