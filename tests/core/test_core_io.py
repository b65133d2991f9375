"""Atomic writes and checkpoints: round trips, resume, and no corrupt file after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from quintet.core import (
    QuintetError,
    atomic_write_json,
    atomic_write_text,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "x.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def _model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return model, optimizer


def _train(model, optimizer, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        gen = torch.Generator().manual_seed(step)
        x = torch.randn(16, 4, generator=gen)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_resume_equals_uninterrupted_training(tmp_path):
    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 10)
    reference = [p.detach().clone() for p in model.parameters()]

    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 6)
    save_checkpoint(tmp_path, model, step=6, config={"width": 8}, optimizer=optimizer, extra={"loss": 0.5})
    resumed, resumed_opt = _model_and_optimizer(1)
    state = load_checkpoint(tmp_path, resumed, resumed_opt)
    assert state["step"] == 6 and state["config"] == {"width": 8} and state["extra"] == {"loss": 0.5}
    _train(resumed, resumed_opt, 4, start=6)
    for got, want in zip(resumed.parameters(), reference):
        assert torch.equal(got, want)


def test_keep_prunes_old_checkpoints(tmp_path):
    model, optimizer = _model_and_optimizer(0)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, model, step=step, optimizer=optimizer, keep=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-00000002", "checkpoint-00000003"]
    assert latest_checkpoint(tmp_path).name == "checkpoint-00000003"


def test_tied_weights_are_saved(tmp_path):
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head": head})
    save_checkpoint(tmp_path, model, step=0)
    fresh = torch.nn.ModuleDict({"emb": torch.nn.Embedding(5, 3), "head": torch.nn.Linear(3, 5, bias=False)})
    load_checkpoint(tmp_path, fresh)
    assert torch.equal(fresh["head"].weight, emb.weight)


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    model, _ = _model_and_optimizer(0)
    with pytest.raises(QuintetError, match="does not exist"):
        load_checkpoint(tmp_path / "nope", model)
    save_checkpoint(tmp_path, model, step=1)
    (latest_checkpoint(tmp_path) / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(QuintetError, match="not a valid safetensors file"):
        load_checkpoint(tmp_path, model)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from quintet.core import save_checkpoint
    model = torch.nn.Linear(2000, 2000)  # 16 MB of weights: each save takes a while
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            model.weight.fill_(step)
        save_checkpoint(sys.argv[1], model, step=step, config={"step": step})
        print(step, flush=True)
    """
)


def test_kill_during_checkpoint_leaves_a_loadable_one(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "1"  # the first checkpoint is complete
        time.sleep(0.05)  # now it is busy writing a later one
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    model = torch.nn.Linear(2000, 2000)
    state = load_checkpoint(tmp_path, model)
    assert state["step"] >= 1 and state["config"] == {"step": state["step"]}
    assert torch.all(model.weight == state["step"])


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644
