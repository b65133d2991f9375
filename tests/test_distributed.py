"""Training under ``accelerate launch`` on 2 CPU processes (gloo) against one process.

Each loop runs a few steps on 2 processes (tests/distributed/dist_worker.py) and in this process on
the same global batches (tests/distributed/dist_scenarios.py). Asserted: both processes end with
identical parameters, equal to the one-process run to float tolerance; evaluation metrics equal
the one-process ones (test sets chosen so that they do not split evenly); only the main process
writes files, the same files a one-process run writes; a run whose second process dies resumes on
both from the last complete checkpoint and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError

HERE = Path(__file__).parent / "distributed"
sys.path.insert(0, str(HERE))

import dist_scenarios  # noqa: E402

# every loop whose parameters must equal the one-process run (float tolerance: summation order)
EXACT = {"sorting": 5e-6, "logic": 5e-6, "algovision": 5e-6, "algovision_path": 5e-6, "render_pose": 1e-6,
         "render_shape": 1e-5}
WITHOUT_DATA = [*EXACT, "algovision_edit"]


# ---------------------------------------------------------------------------------- the arithmetic
@given(st.integers(1, 500), st.integers(1, 9))
def test_shards_partition_the_batch(n, world):
    bounds = [Dist(r, world).bounds(n) for r in range(world)]
    assert [lo for lo, _ in bounds] == [0, *[hi for _, hi in bounds[:-1]]]  # contiguous, in rank order
    assert bounds[-1][1] == n
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert sum(Dist(r, world).weight(n) for r in range(world)) == pytest.approx(world)
    # the weighted shard means average to the global mean
    values = torch.arange(n, dtype=torch.float64) ** 1.5
    shard_means = [values[lo:hi].mean() if hi > lo else torch.tensor(0.0, dtype=torch.float64) for lo, hi in bounds]
    averaged = sum(Dist(r, world).weight(n) * m for r, m in enumerate(shard_means)) / world
    assert float(averaged) == pytest.approx(float(values.mean()), rel=1e-12)


def test_one_process_is_the_identity():
    one = current()
    assert (one.rank, one.world, one.is_main) == (0, 1, True)
    x = torch.arange(10.0)
    assert one.shard(x) is x and one.gather(x, 10) is x and one.weight(10) == 1.0
    assert one.agree("checkpoint-00000002") == "checkpoint-00000002"
    assert float(one.all_sum(2.5)) == 2.5 and one.any(True) and not one.any(False)
    model = torch.nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()
    before = model.weight.grad.clone()
    one.sync_gradients(model.parameters())
    assert torch.equal(model.weight.grad, before)


def test_batch_smaller_than_the_processes_is_refused():
    with pytest.raises(QuintetError, match="batch size 1 cannot be split over 2 processes"):
        Dist(1, 2).check_batch(1)


# ---------------------------------------------------------------------------------- launching
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(out: Path | None, *args: str, check: bool = True, script: Path = HERE / "dist_worker.py"
           ) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``script`` (by default the worker, writing into ``out``) on 2 CPU
    processes (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), str(script), *([str(out)] if out else []), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        pytest.fail(f"the 2-process launch failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def reference(out: Path, name: str, **kwargs) -> Path:
    """The same scenario in this (single) process."""
    dist_scenarios.run(name, out / name, **kwargs)
    return out / name


def outcome(folder: Path, rank: int) -> tuple[dict[str, torch.Tensor], dict]:
    record = json.loads((folder / f"rank{rank}.json").read_text())
    writes = sorted(str(Path(p).relative_to(folder)) for p in record["writes"])
    return load_file(str(folder / f"rank{rank}.safetensors")), {**record, "writes": writes}


def assert_same_metrics(ours, theirs, path="metrics", rel=1e-5, rel_of: dict[str, float] | None = None):
    """Equal evaluation results (floats to ``rel``, 1e-5: sums in another order; a key named in
    ``rel_of`` to its own tolerance), timings ignored."""
    if isinstance(ours, dict):
        assert set(ours) == set(theirs), path
        for key in ours:
            if key != "seconds":
                assert_same_metrics(ours[key], theirs[key], f"{path}.{key}", (rel_of or {}).get(key, rel), rel_of)
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_metrics(a, b, f"{path}[{i}]", rel, rel_of)
    elif isinstance(ours, float):  # a dropped or repeated test example moves an accuracy far more
        assert ours == pytest.approx(theirs, rel=rel, abs=2e-5), path
    else:
        assert ours == theirs, path


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two")
    launch(out, *WITHOUT_DATA)
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    for name in WITHOUT_DATA:
        reference(out, name)
    return out


def check_loop(two: Path, one: Path, tolerance: float | None, metric_rel: dict[str, float] | None = None) -> None:
    params0, record0 = outcome(two, 0)
    params1, record1 = outcome(two, 1)
    alone, single = outcome(one, 0)
    # the processes stay in step: identical parameters and metrics on both
    assert params0.keys() == params1.keys() == alone.keys()
    for key in params0:
        assert torch.equal(params0[key], params1[key]), key
    assert_same_metrics(record0["metrics"], record1["metrics"])
    # only the main process writes, and it writes what one process writes
    assert record1["writes"] == []
    assert record0["writes"] == single["writes"]
    if tolerance is None:
        return
    for key in params0:
        torch.testing.assert_close(params0[key], alone[key], atol=tolerance, rtol=0, msg=key)
    assert_same_metrics(record0["metrics"], single["metrics"], rel_of=metric_rel)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXACT))
def test_two_processes_equal_one(name, two_processes, one_process):
    check_loop(two_processes / name, one_process / name, EXACT[name])


@pytest.mark.slow
def test_batch_norm_loop_stays_in_step(two_processes, one_process):
    """The edit-distance CNN normalises with its shard's batch statistics, so its gradients are not
    those of the combined batch; what holds is that both processes train one model (parameters,
    running statistics, metrics identical) and that one process writes."""
    check_loop(two_processes / "algovision_edit", one_process / "algovision_edit", None)
    params, _ = outcome(two_processes / "algovision_edit", 0)
    alone, _ = outcome(one_process / "algovision_edit", 0)
    assert any(not torch.allclose(params[k], alone[k], atol=1e-4) for k in params)


@pytest.mark.slow
def test_fact_lm_two_processes_equal_one(tmp_path, data_dir):
    launch(tmp_path / "two", "factlm")
    reference(tmp_path / "one", "factlm")
    check_loop(tmp_path / "two" / "factlm", tmp_path / "one" / "factlm", 5e-6)


# ---------------------------------------------------------------------------------- DRO
@pytest.fixture(scope="module")
def dro_two(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dro_two")
    launch(out, *dist_scenarios.DRO)
    return out


@pytest.fixture(scope="module")
def dro_one(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dro_one")
    for name in dist_scenarios.DRO:
        reference(out, name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(dist_scenarios.DRO))
def test_dro_two_processes_equal_one(name, dro_two, dro_one):
    """ERM, Group DRO, ratio DRO (both normalisations, both recipes, a BiLSTM on padded sentences),
    CVaR, chi-square, KL and uniform group weighting: batches of 9 (5 + 4) and 7 (4 + 3), 301
    validation rows (151 + 150); same parameters, history, selected epochs and adversary weights."""
    # the KL adversary's temperature is bisected to 1e-5 in log10: a loss that rounds differently
    # can end the bisection one step apart and move each weight by up to ~|l - mean l| / tau * 2.3e-5
    check_loop(dro_two / name, dro_one / name, 5e-6, {"valid_weights": 1e-4} if name == "dro_kl" else None)


@pytest.mark.slow
def test_dro_crash_on_one_rank_resumes_on_both(tmp_path, dro_one):
    """Process 1 dies at the third step of epoch 2 (one checkpoint per epoch): the relaunch resumes
    both processes from epoch 1 and ends with the parameters and selection of an uninterrupted run."""
    crashed = launch(tmp_path / "two", "dro_ratio", "--kill-after", "10", check=False)
    assert crashed.returncode != 0 and re.search(r"exitcode\s*:\s*3", crashed.stdout + crashed.stderr)
    checkpoints = tmp_path / "two" / "dro_ratio" / "run"
    assert (checkpoints / "latest").read_text().strip() == "checkpoint-00000001"
    launch(tmp_path / "two", "dro_ratio")
    resumed, record = outcome(tmp_path / "two" / "dro_ratio", 0)
    other, _ = outcome(tmp_path / "two" / "dro_ratio", 1)
    alone, single = outcome(dro_one / "dro_ratio", 0)
    assert [w for w in record["writes"] if "checkpoint-00000001" in w] == []
    for key in alone:
        assert torch.equal(resumed[key], other[key]), key
        torch.testing.assert_close(resumed[key], alone[key], atol=5e-6, rtol=0, msg=key)
    assert_same_metrics(record["metrics"], single["metrics"])


@pytest.mark.slow
def test_dro_command_line_under_accelerate_launch(tmp_path):
    """`accelerate launch ... quintet dro train`: one table, one results.json, the last checkpoint."""
    quintet = Path(sys.executable).parent / "quintet"
    done = launch(None, "dro", "train", "--task", "synthetic", "--method", "group-dro", "--epochs", "2",
                  "--n-train", "61", "--batch-size", "9", "--out", str(tmp_path / "run"), script=quintet)
    assert done.stdout.count("| greedy-minmax |") == 1
    assert (done.stdout + done.stderr).count("epoch 2: valid acc") == 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["metrics"]["history"]) == 2
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "checkpoint-00000002"


@pytest.mark.slow
def test_crash_on_one_rank_resumes_on_both(tmp_path):
    """Process 1 dies after step 3 (checkpoints every 2 steps): the relaunch resumes both processes
    from step 2 and ends with the parameters of an uninterrupted 6-step run."""
    crashed = launch(tmp_path / "two", "sorting", "--steps", "6", "--kill-after", "3", check=False)
    assert crashed.returncode != 0 and re.search(r"exitcode\s*:\s*3", crashed.stdout + crashed.stderr)
    checkpoints = tmp_path / "two" / "sorting" / "run" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "checkpoint-00000002"
    launch(tmp_path / "two", "sorting", "--steps", "6")
    resumed, record = outcome(tmp_path / "two" / "sorting", 0)
    other, _ = outcome(tmp_path / "two" / "sorting", 1)
    alone, single = outcome(reference(tmp_path / "one", "sorting", steps=6), 0)
    assert record["metrics"]["steps"] == 6
    # the relaunch wrote only the checkpoints after step 2
    assert [w for w in record["writes"] if "checkpoint-00000002" in w] == []
    for key in alone:
        assert torch.equal(resumed[key], other[key]), key
        torch.testing.assert_close(resumed[key], alone[key], atol=5e-6, rtol=0, msg=key)
    assert_same_metrics(record["metrics"], single["metrics"])


@pytest.mark.slow
def test_command_line_training_under_accelerate_launch(tmp_path):
    """`accelerate launch ... quintet sorting train-ranking`: one progress report, one result line,
    one results.json, and the checkpoint of the last step."""
    quintet = Path(sys.executable).parent / "quintet"
    done = launch(None, "sorting", "train-ranking", "--source", "digits", "--n", "3", "--steps", "2",
                  "--batch-size", "5", "--out", str(tmp_path / "run"), script=quintet)
    results = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1 and json.loads(results[0])["steps"] == 2
    assert done.stdout.count("step 2: loss") + done.stderr.count("step 2: loss") == 1
    assert json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]["steps"] == 2
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "checkpoint-00000002"
