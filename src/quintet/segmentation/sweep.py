"""Resumable sweeps of training runs for the reproduction: every run is a :class:`Job` whose result
is written atomically, with its configuration, to its own record file; a finished record is reused
when its configuration matches.  A run in progress checkpoints every :data:`CHECKPOINT_EVERY` steps
into ``<record stem>-checkpoint/`` and an interrupted run continues from there exactly; the folder
goes once the record is written.  Several processes may work through the same list of jobs: a job
is claimed by creating ``<record>.claim`` exclusively (holding the claimant's process id; a claim
whose process is gone is taken over), and a process waits for the records of jobs others hold.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from quintet.core.io import atomic_write_json, save_checkpoint
from quintet.segmentation.data import Domain, holdout_split
from quintet.segmentation.experiments import TrainConfig, evaluate, train

#: share of each source sequence held out (its first frames) for the convergence study
HOLDOUT_FRACTION = 0.2
#: steps between the checkpoints of a run in progress (a few minutes of CPU work)
CHECKPOINT_EVERY = 400


@dataclass(frozen=True)
class SweepData:
    """Source and unseen target domains; with held-out training the sources lose their first
    :data:`HOLDOUT_FRACTION` of frames, pooled into one validation domain."""

    sources: list[Domain]
    targets: list[Domain]

    def held_out(self) -> tuple[list[Domain], Domain]:
        parts = [holdout_split(d, HOLDOUT_FRACTION) for d in self.sources]
        held = [p[1] for p in parts]
        pooled = Domain("held-out source", np.concatenate([d.images for d in held]),
                        np.concatenate([d.labels for d in held]))
        return [p[0] for p in parts], pooled


@dataclass(frozen=True)
class Job:
    """One training run: ``name`` (printed), ``record`` (its JSON file), the configuration, whether it
    trains on the sources without their held-out frames (and is scored on them), whether the model
    is kept beside the record (``<record stem>-model/``) and whether its memory read is diagnosed."""

    name: str
    record: Path
    cfg: TrainConfig
    holdout: bool = False
    keep_model: bool = False
    diagnose: bool = False

    @property
    def model_dir(self) -> Path:
        return self.record.with_name(self.record.stem + "-model")

    @property
    def checkpoint_dir(self) -> Path:
        return self.record.with_name(self.record.stem + "-checkpoint")

    def key(self) -> dict[str, Any]:
        return json.loads(json.dumps({"train": self.cfg.to_dict(),
                                      "holdout": HOLDOUT_FRACTION if self.holdout else None}))


def slug(label: str) -> str:
    """A file-name-safe form of a run label."""
    return "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-").replace("--", "-")


def cached(job: Job) -> dict[str, Any] | None:
    """The stored result of ``job`` when its record was written by the same configuration (and its
    model is there when the job keeps one)."""
    if not job.record.is_file():
        return None
    saved = json.loads(job.record.read_text())
    if saved.get("config") != job.key():
        return None
    if job.keep_model and not (job.model_dir / "latest").exists():
        return None
    return saved["result"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(job: Job) -> bool:
    """Claim ``job`` for this process; False when a live process holds it."""
    path = job.record.with_suffix(".claim")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid() or (pid and _alive(pid)):
                return pid == os.getpid()
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return True
    return False


def run_job(job: Job, data: SweepData) -> dict[str, Any]:
    """Train and score one job, store its record (and model); returns the result: seconds, mIoU per
    target (``<target>``, per class ``<target>_iou``, Gumbel read ``<target>_gumbel``), with held-out
    training ``heldout``, with memory the initial slots' mean pairwise cosine, and with ``diagnose``
    the memory-read diagnosis."""
    from quintet.segmentation.diagnosis import memory_read_diagnosis

    sources, held = data.held_out() if job.holdout else (data.sources, None)
    start = time.perf_counter()
    # the checkpoint interval changes no number, so the record's configuration keeps the job's own
    model, info = train(replace(job.cfg, checkpoint_every=min(job.cfg.checkpoint_every, CHECKPOINT_EVERY)), sources,
                        checkpoint_dir=job.checkpoint_dir)
    # a resumed run: the steps of earlier invocations are counted at this invocation's rate
    earlier = info["resumed_at"] * info["seconds_per_step"]
    result: dict[str, Any] = {"seed": job.cfg.seed, "steps": job.cfg.steps,
                              "seconds": time.perf_counter() - start + earlier,
                              "seconds_per_step": info["seconds_per_step"]}
    if "init_slot_cosine" in info:
        result["init_slot_cosine"] = info["init_slot_cosine"]
    if held is not None:
        result["heldout"] = evaluate(model, held)["miou"]
    for d in data.targets:
        ev = evaluate(model, d)
        result[d.name], result[f"{d.name}_iou"] = ev["miou"], ev["iou"]
        if model.memory is not None:
            result[f"{d.name}_gumbel"] = evaluate(model, d, gumbel=True, seed=job.cfg.seed)["miou"]
    if job.diagnose:
        result["read_diagnosis"] = memory_read_diagnosis(model, data.targets)
    if job.keep_model:
        save_checkpoint(job.model_dir, model, step=job.cfg.steps,
                        config={"train": job.cfg.to_dict(), "net": job.cfg.net_config().to_dict()})
    atomic_write_json(job.record, {"config": job.key(), "result": result})
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    scores = ([f"held-out {result['heldout']:.3f}"] if held is not None else []) + \
        [f"{d.name} {result[d.name]:.3f}" for d in data.targets]
    print(f"[segmentation] {job.name}: " + ", ".join(scores) + f" ({result['seconds']:.0f} s)", flush=True)
    return result


def run_jobs(jobs: Sequence[Job], data: SweepData, poll: float = 10.0) -> list[dict[str, Any]]:
    """Results of all ``jobs`` (in order): reused, run here, or awaited from the process that
    claimed them."""
    results: dict[Path, dict[str, Any]] = {}
    pending = list(jobs)
    while pending:
        progressed = False
        for job in list(pending):
            result = cached(job)
            if result is None and claim(job):
                try:
                    result = run_job(job, data)
                finally:
                    job.record.with_suffix(".claim").unlink(missing_ok=True)
            if result is not None:
                results[job.record] = result
                pending.remove(job)
                progressed = True
        if pending and not progressed:
            time.sleep(poll)
    return [results[job.record] for job in jobs]


__all__ = ["CHECKPOINT_EVERY", "HOLDOUT_FRACTION", "Job", "SweepData", "cached", "claim", "run_job", "run_jobs", "slug"]
