"""Augmentations (the authors' strong and meta augmentation), the learning-rate schedules, the
held-out split, the convergence rule, the power of a paired test and the resumable sweep."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from scipy.stats import ttest_rel

from quintet.core.errors import QuintetError
from quintet.segmentation.augmentations import (
    META_JITTER,
    Jitter,
    color_jitter,
    gaussian_blur,
    random_scale_crop,
    rotate_hue,
)
from quintet.segmentation.data import Domain, holdout_split, normalize
from quintet.segmentation.demo import synthetic_domain
from quintet.segmentation.experiments import TrainConfig, _lr, augment_batch, load_model, train
from quintet.segmentation.metrics import detectable_difference, paired_statistics
from quintet.segmentation.models import NetConfig
from quintet.segmentation.reproduce import converged_steps
from quintet.segmentation.sweep import Job, SweepData, cached, claim, run_jobs

NET = NetConfig.tiny(num_classes=4, stem=8, widths=(8, 8, 8, 8), aspp_dim=8, decoder_dim=8, low_dim=4).to_dict()


def _images(seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 12, 16, generator=torch.Generator().manual_seed(seed))


def test_color_jitter_identity_range_and_determinism():
    x = _images()
    assert torch.allclose(color_jitter(x, Jitter(0, 0, 0, 0), torch.Generator().manual_seed(0)), x, atol=1e-5)
    a = color_jitter(x, META_JITTER, torch.Generator().manual_seed(1))
    b = color_jitter(x, META_JITTER, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, x)
    never = color_jitter(x, Jitter(0.8, 0.8, 0.8, 0.3, p=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(never, x)
    # brightness alone scales the image (before clipping)
    dark = x * 0.5
    out = color_jitter(dark, Jitter(0.5, 0, 0, 0), torch.Generator().manual_seed(3))
    ratio = out / dark.clamp_min(1e-6)
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-4)


def test_hue_rotation_keeps_luma_and_is_periodic():
    x = _images(2)
    turns = torch.tensor([0.0, 0.25, 1.0])
    y = rotate_hue(x, turns)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((y * w).sum(1), (x * w).sum(1), atol=1e-5)
    assert torch.allclose(y[0], x[0], atol=1e-5) and torch.allclose(y[2], x[2], atol=1e-5)
    assert not torch.allclose(y[1], x[1], atol=1e-3)
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert torch.allclose(rotate_hue(grey, torch.tensor([0.3])), grey, atol=1e-5)  # no chroma to rotate


def test_gaussian_blur_keeps_constants_and_smooths():
    g = torch.Generator().manual_seed(0)
    flat = torch.full((2, 3, 10, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, g), flat, atol=1e-6)
    x = _images(4)
    y = gaussian_blur(x, torch.Generator().manual_seed(0), sigma=(1.0, 1.0))
    assert y.shape == x.shape and y.var() < x.var()
    assert torch.allclose(y.mean(), x.mean(), atol=0.02)


def test_random_scale_crop():
    x = _images(5, 2)
    y = torch.randint(0, 4, (2, 12, 16), generator=torch.Generator().manual_seed(0))
    same_x, same_y = random_scale_crop(x, y, torch.Generator().manual_seed(0), scale=(1.0, 1.0))
    assert torch.allclose(same_x, x, atol=1e-6) and torch.equal(same_y, y)
    small_x, small_y = random_scale_crop(x, y, torch.Generator().manual_seed(0), scale=(0.5, 0.5))
    assert small_x.shape == x.shape and small_y.shape == y.shape
    assert (small_y == 255).float().mean().item() == pytest.approx(0.75)  # a quarter of the frame is image
    big_x, big_y = random_scale_crop(x, y, torch.Generator().manual_seed(0), scale=(2.0, 2.0))
    assert (big_y != 255).all() and set(big_y.unique().tolist()) <= set(y.unique().tolist())


def test_augment_batch_meta_aug_only_on_the_first_source():
    x = _images(6, 2)
    y = torch.zeros(2, 12, 16, dtype=torch.long)
    plain = TrainConfig(flip=False, color=0.0)
    meta = TrainConfig(flip=False, color=0.0, first_source_meta_aug=True)
    ref = normalize(x)
    for first in (False, True):
        out, _ = augment_batch(meta, x, y, torch.Generator().manual_seed(0), first_source=first)
        assert torch.allclose(out, ref, atol=1e-6) != first
    out, _ = augment_batch(plain, x, y, torch.Generator().manual_seed(0), first_source=True)
    assert torch.allclose(out, ref, atol=1e-6)
    strong, labels = augment_batch(TrainConfig(augmentation="strong"), x, y, torch.Generator().manual_seed(0), True)
    assert strong.shape == x.shape and labels.shape == y.shape


def test_schedules_and_options_are_checked():
    poly, exp = TrainConfig(steps=100, lr=0.05), TrainConfig(steps=100, lr=0.01, schedule="exp")
    assert _lr(poly, 0) == 0.05 and _lr(poly, 50) == pytest.approx(0.05 * 0.5**0.9)
    assert _lr(exp, 0) == 0.01 and _lr(exp, 100) == pytest.approx(0.01 * math.exp(-2.25))
    for bad, match in (({"augmentation": "heavy"}, "augmentation"), ({"schedule": "cosine"}, "schedule")):
        with pytest.raises(QuintetError, match=match):
            TrainConfig(**bad).validate()


def test_resume_with_strong_augmentation_and_meta_aug(tmp_path):
    import shutil

    torch.set_num_threads(1)
    sources = [synthetic_domain("sunny", 6, 1, (24, 32)), synthetic_domain("overcast", 6, 2, (24, 32))]
    cfg = TrainConfig(method="pinmem", steps=4, batch=2, net=NET, checkpoint_every=2, init_frames=4,
                      augmentation="strong", schedule="exp", first_source_meta_aug=True)
    full, _ = train(cfg, sources)
    train(cfg, sources, checkpoint_dir=tmp_path)
    shutil.rmtree(tmp_path / "checkpoint-00000004")
    (tmp_path / "latest").write_text("checkpoint-00000002\n")
    resumed, _ = train(cfg, sources, checkpoint_dir=tmp_path)
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), n


def test_holdout_split_takes_the_first_frames():
    d = synthetic_domain("sunny", 10, 0, (24, 32))
    train_part, held = holdout_split(d, 0.2)
    assert len(held) == 2 and len(train_part) == 8
    assert np.array_equal(held.images, d.images[:2]) and np.array_equal(train_part.images, d.images[2:])
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(QuintetError, match="fraction"):
            holdout_split(d, bad)
    with pytest.raises(QuintetError, match="too few"):
        holdout_split(d.subset(slice(0, 1)), 0.5)


def test_converged_steps_rule():
    assert converged_steps((100, 200, 400), [0.30, 0.34, 0.342], 0.005) == (200, True)
    assert converged_steps((100, 200, 400), [0.30, 0.34, 0.40], 0.005) == (400, False)
    assert converged_steps((100, 200), [0.30, 0.29], 0.005) == (100, True)


def test_detectable_difference_is_the_p_005_threshold():
    n, std = 8, 0.012
    d = detectable_difference(std, n)
    # paired differences with exactly that mean and std give p = 0.05
    z = np.array([1, -1, 1, -1, 1, -1, 1, -1], dtype=float)
    diffs = d + std * z / z.std(ddof=1)
    assert paired_statistics(diffs, np.zeros(n))["p"] == pytest.approx(0.05, rel=1e-6)
    assert ttest_rel(diffs, np.zeros(n)).pvalue == pytest.approx(0.05, rel=1e-6)
    assert detectable_difference(std, n, power=0.8) > d > detectable_difference(std, 32)
    with pytest.raises(QuintetError, match="at least 2"):
        detectable_difference(std, 1)


def _job(tmp_path, seed: int = 0, steps: int = 1) -> Job:
    cfg = TrainConfig(method="erm", seed=seed, steps=steps, batch=2, net=NET, checkpoint_every=10)
    return Job(f"erm {seed}", tmp_path / f"erm-{seed}.json", cfg, holdout=True, keep_model=True)


def test_sweep_reuses_records_and_respects_claims(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    data = SweepData([synthetic_domain("sunny", 6, 1, (24, 32)), synthetic_domain("overcast", 6, 2, (24, 32))],
                     [synthetic_domain("dusk", 3, 3, (24, 32))])
    job = _job(tmp_path)
    first = run_jobs([job], data)[0]
    assert 0.0 <= first["heldout"] <= 1.0 and "dusk" in first and (job.model_dir / "latest").exists()
    assert cached(job) == first
    assert cached(_job(tmp_path, steps=2)) is None  # another configuration: not reused
    import quintet.segmentation.sweep as sweep

    monkeypatch.setattr(sweep, "run_job", lambda *a: pytest.fail("a finished record was run again"))
    assert run_jobs([job], data) == [first]
    # a claim held by a live process is respected, a stale one is taken over
    other = _job(tmp_path, seed=1)
    claim_file = other.record.with_suffix(".claim")
    claim_file.write_text(str(os.getppid()))
    assert not claim(other)
    claim_file.write_text("999999999")
    assert claim(other) and claim_file.read_text() == str(os.getpid())


def test_interrupted_sweep_run_resumes_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    import quintet.segmentation.experiments as experiments
    import quintet.segmentation.sweep as sweep

    torch.set_num_threads(1)
    data = SweepData([synthetic_domain("sunny", 6, 1, (24, 32)), synthetic_domain("overcast", 6, 2, (24, 32))],
                     [synthetic_domain("dusk", 3, 3, (24, 32))])
    cfg = TrainConfig(method="erm", seed=0, steps=5, batch=2, net=NET, checkpoint_every=10**9)
    first = Job("whole", tmp_path / "a" / "erm.json", cfg, keep_model=True)
    whole = run_jobs([first], data)[0]
    monkeypatch.setattr(sweep, "CHECKPOINT_EVERY", 2)
    job = Job("cut", tmp_path / "b" / "erm.json", cfg, keep_model=True)
    real_step, calls = experiments.erm_step, []

    def cut_after_four(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(experiments, "erm_step", cut_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_jobs([job], data)
    assert (job.checkpoint_dir / "latest").exists() and not job.record.exists()
    assert not job.record.with_suffix(".claim").exists()
    monkeypatch.setattr(experiments, "erm_step", real_step)
    resumed = run_jobs([job], data)[0]
    assert resumed["dusk_iou"] == whole["dusk_iou"] and resumed["dusk"] == whole["dusk"]
    weights = [load_model(j.model_dir)[0].state_dict() for j in (first, job)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not job.checkpoint_dir.exists() and cached(job) == resumed
    # the record keeps the job's configuration: the checkpoint interval is not part of it
    assert json.loads(job.record.read_text())["config"]["train"]["checkpoint_every"] == 10**9


def test_sweep_data_holds_out_the_first_fifth():
    d = Domain("a", np.zeros((10, 4, 4, 3), np.uint8), np.zeros((10, 4, 4), np.uint8))
    sources, held = SweepData([d, d.subset(slice(0, 5))], []).held_out()
    assert [len(s) for s in sources] == [8, 4] and len(held) == 3


def test_shorter_schedules_compare_the_finished_records_of_shorter_runs(tmp_path):
    from quintet.core.io import atomic_write_json
    from quintet.segmentation.reproduce import ABLATIONS, MAIN, _group_jobs, shorter_schedules

    targets = ["a", "b"]
    jobs = _group_jobs(tmp_path / "300-steps", MAIN, [0, 1, 2], 300, 0)
    for label, group in jobs.items():
        for job in group:
            if label == "ERM" and job.cfg.seed == 2:
                continue  # an unfinished run: only seeds 0 and 1 are compared
            gain = 0.02 * job.cfg.seed if label == "Pin the Memory" else 0.0
            atomic_write_json(job.record, {"config": job.key(),
                                           "result": {"seed": job.cfg.seed, "a": 0.3 + gain, "b": 0.2 + gain}})
    (tmp_path / "4800-steps").mkdir()  # the schedule being reported: not a shorter one
    found = shorter_schedules(tmp_path, 1200, {"main": [0, 1, 2], "ablations": [0, 1]}, 0, targets)
    assert list(found) == [300] and list(found[300]) == ["main"]  # no ablation record was written
    pm = found[300]["main"]["Pin the Memory − ERM"]["stats"]["mean"]
    assert pm["n"] == 2 and pm["mean"] == pytest.approx(0.01)
    assert found[300]["main"]["MLDG − ERM"]["stats"]["mean"]["mean"] == 0.0
    assert shorter_schedules(tmp_path, 300, {"main": [0, 1, 2]}, 0, targets) == {}
    # an ablation compared with the main group's Pin the Memory runs of the same seeds
    for job in _group_jobs(tmp_path / "300-steps", ABLATIONS, [0, 1], 300, 0)["PinMem, no cohesion loss"]:
        atomic_write_json(job.record, {"config": job.key(), "result": {"seed": job.cfg.seed, "a": 0.29, "b": 0.19}})
    found = shorter_schedules(tmp_path, 1200, {"main": [0, 1, 2], "ablations": [0, 1]}, 0, targets)
    ablation = found[300]["ablations"]["Pin the Memory − PinMem, no cohesion loss"]["stats"]["mean"]
    assert ablation["n"] == 2 and ablation["mean"] == pytest.approx(0.02)  # Pin the Memory 0.25, 0.27 against 0.24
