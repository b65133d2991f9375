"""Training and evaluation loops for ERM, MLDG, memory-only and Pin the Memory.

``train(config, sources)`` trains on a list of source :class:`Domain` s with checkpoints and
resume; ``evaluate(model, domain)`` gives mIoU on an (unseen) domain; ``predict`` labels images.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError, check_choice
from quintet.core.io import latest_checkpoint, load_checkpoint, read_json, save_checkpoint
from quintet.core.progress import progress_bar
from quintet.segmentation.augmentations import (
    STANDARD_JITTER,
    color_jitter,
    gaussian_blur,
    meta_augment,
    random_scale_crop,
)
from quintet.segmentation.data import (
    Domain,
    DomainSampler,
    augment,
    check_images,
    check_labels,
    normalize,
    to_tensor,
)
from quintet.segmentation.losses import LossWeights
from quintet.segmentation.memory import mean_pairwise_cosine
from quintet.segmentation.meta import erm_step, initialise_memory, meta_step
from quintet.segmentation.metrics import confusion_matrix, iou_from_confusion, mean_iou
from quintet.segmentation.models import NetConfig, SegmentationNet, build_model
from quintet.segmentation.parallel import all_reduce_sum

METHODS = {
    "erm": (False, False),  # (memory, meta-learning)
    "mldg": (False, True),
    "memory": (True, False),
    "pinmem": (True, True),
}


AUGMENTATIONS = ("weak", "strong")
SCHEDULES = ("poly", "exp")
#: the exponential schedule's decay over a whole run (the authors' exp(−9·30 000 / 120 000))
EXP_DECAY = 2.25


@dataclass(frozen=True)
class TrainConfig:
    """One training run.  ``batch`` frames are drawn from *each* source domain per step."""

    method: str = "pinmem"
    seed: int = 0
    steps: int = 300
    batch: int = 4
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    inner_lr_ratio: float = 0.25  # α = lr / 4, annealed with lr (authors' --inner_lr_anneal)
    flip: bool = True
    color: float = 0.25
    # "weak": flip + brightness/contrast jitter of size ``color``; "strong": the authors' random
    # scale 0.5–2 crops + colour jitter (p 0.5) + Gaussian blur, then flip
    augmentation: str = "weak"
    # "poly": lr·(1 − t/T)^0.9; "exp": the authors' lr·exp(−9·t/120000) at ~30 k iterations,
    # compressed to T steps: lr·exp(−2.25·t/T)
    schedule: str = "poly"
    # the authors' code gives the first source domain a stronger colour jitter + blur in its meta-
    # learning runs (MLDG, Pin the Memory) only; True reproduces that for this run
    first_source_meta_aug: bool = False
    init_frames: int = 64  # per source domain, for the memory initialisation
    checkpoint_every: int = 100
    net: dict[str, Any] = field(default_factory=lambda: NetConfig.tiny().to_dict())
    losses: dict[str, float] = field(default_factory=lambda: LossWeights().to_dict())

    def validate(self) -> "TrainConfig":
        check_choice("method", self.method, tuple(METHODS))
        check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name in ("steps", "batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise QuintetError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch < 2:
            raise QuintetError(f"batch must be >= 2 frames per domain (batch norm in training), got {self.batch}")
        if not self.lr > 0:
            raise QuintetError(f"lr must be > 0, got {self.lr}")
        NetConfig.from_dict(self.net)
        return self

    def net_config(self) -> NetConfig:
        memory, _ = METHODS[self.method]
        return replace(NetConfig.from_dict(self.net), memory=memory)

    def loss_weights(self) -> LossWeights:
        return LossWeights(**self.losses)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__}).validate()


def _device() -> torch.device:
    """The device ``accelerate`` assigns to this process (a GPU when present, else the CPU)."""
    from quintet.core.device import default_device

    return default_device()


def _lr(cfg: TrainConfig, step: int) -> float:
    if cfg.schedule == "exp":
        return cfg.lr * math.exp(-EXP_DECAY * step / cfg.steps)
    return cfg.lr * (1 - step / cfg.steps) ** cfg.poly_power


def augment_batch(cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, g: torch.Generator,
                  first_source: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``[0, 1]`` images ``x: (B, 3, H, W)`` and labels ``y: (B, H, W)`` of one source domain ->
    augmented, normalised training batch (see ``TrainConfig.augmentation`` and
    ``first_source_meta_aug``)."""
    meta = cfg.first_source_meta_aug and first_source
    if cfg.augmentation == "strong":
        x, y = random_scale_crop(x, y, g)
        x = meta_augment(x, g) if meta else gaussian_blur(color_jitter(x, STANDARD_JITTER, g), g)
        return augment(normalize(x), y, generator=g, flip=cfg.flip)
    if meta:
        return augment(normalize(meta_augment(x, g)), y, generator=g, flip=cfg.flip)
    return augment(normalize(x), y, generator=g, flip=cfg.flip, color=cfg.color)


def train(cfg: TrainConfig, sources: Sequence[Domain], checkpoint_dir: str | Path | None = None,
          log: Callable[[str], None] | None = None, progress: bool = False) -> tuple[SegmentationNet, dict[str, Any]]:
    """Train ``cfg.method`` on ``sources``; checkpoints every ``checkpoint_every`` steps into
    ``checkpoint_dir`` and resumes from the latest one there.  Every step draws its batches,
    augmentation, domain split and dropout/Gumbel noise from seeds derived from (seed, step), so a
    resumed run continues as an uninterrupted one would. ``progress`` shows a bar (rate, loss) on stderr.

    Returns the model (eval mode) and ``{"history": [...], "seconds_per_step": float, "resumed_at": step}``
    (``resumed_at``: the step this call started from; plus, with memory, ``init_slot_cosine``: the mean
    cosine between distinct initial slots).

    Under ``accelerate launch`` every process draws and augments the same global batches and keeps
    its rows of each domain's batch (``cfg.batch`` frames per domain in all, split over the
    processes); gradients are averaged, memory writes see the whole batch, batch-norm running
    statistics are averaged after every step, and only the main process logs, shows progress and
    writes checkpoints (see ``docs/distributed.md``).
    """
    cfg = cfg.validate()
    dist = current()
    if dist.world > 1 and cfg.batch < 2 * dist.world:
        raise QuintetError(f"batch {cfg.batch} frames per domain cannot be split over {dist.world} processes; "
                           f"expected at least {2 * dist.world} (2 per process: batch norm in training)")
    log, progress = dist.main_only(log) if log else None, progress and dist.is_main
    use_mem, use_meta = METHODS[cfg.method]
    if use_meta and len(sources) < 2:
        raise QuintetError(f"{cfg.method} needs >= 2 source domains, got {len(sources)}")
    net_cfg = cfg.net_config()
    for d in sources:
        check_images(d.images, what=f"domain {d.name} images")
        check_labels(d.labels, net_cfg.num_classes, what=f"domain {d.name} labels")
    torch.manual_seed(cfg.seed)
    model = SegmentationNet(net_cfg)
    device = _device()
    model.to(device)
    dist.broadcast_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start, history, init_cosine = 0, [], None
    ckpt = dist.latest_checkpoint(checkpoint_dir)
    if ckpt is not None:
        # the configuration is compared before any weights are loaded
        state = load_checkpoint(ckpt, model, opt, expected_config={"train": cfg.to_dict()})
        start, history = int(state["step"]), list(state["extra"].get("history", []))
        init_cosine = state["extra"].get("init_slot_cosine")
        if log:
            log(f"resumed from {ckpt} at step {start}")
    elif use_mem:
        g = torch.Generator().manual_seed(cfg.seed)
        init = []
        for d in sources:
            idx = torch.randperm(len(d), generator=g)[: cfg.init_frames].numpy()
            x, y = to_tensor(d.images[idx]), torch.as_tensor(d.labels[idx].astype(np.int64))
            init += [(x[i:i + 16].to(device), y[i:i + 16].to(device)) for i in range(0, len(idx), 16)]
        initialise_memory(model, init)
        init_cosine = mean_pairwise_cosine(model.memory.slots)
    samplers = [DomainSampler(d, cfg.batch, torch.Generator()) for d in sources]
    if model.memory is not None and dist.world > 1:
        model.memory.reduce = lambda tensor: all_reduce_sum(dist, tensor)
    try:
        return _train_steps(cfg, model, opt, samplers, dist, start, history, init_cosine, checkpoint_dir, progress)
    finally:
        if model.memory is not None:
            model.memory.reduce = None


def _train_steps(cfg: TrainConfig, model: SegmentationNet, opt: torch.optim.Optimizer, samplers: list[DomainSampler],
                 dist: Dist, start: int, history: list, init_cosine: float | None, checkpoint_dir: str | Path | None,
                 progress: bool) -> tuple[SegmentationNet, dict[str, Any]]:
    """Steps ``start .. cfg.steps - 1`` of :func:`train`."""
    _, use_meta = METHODS[cfg.method]
    net_cfg, weights = cfg.net_config(), cfg.loss_weights()
    device = next(model.parameters()).device
    model.train()
    t0, timed = time.perf_counter(), 0
    bar = progress_bar(cfg.steps, f"segment {cfg.method}", start, progress)
    for step in range(start, cfg.steps):
        step_seed = cfg.seed * 1_000_003 + step
        # dropout and Gumbel noise: per process (each draws for its own rows)
        torch.manual_seed(step_seed if dist.world == 1 else step_seed * 1024 + dist.rank)
        g = torch.Generator().manual_seed(step_seed)
        batches = []
        for i, s in enumerate(samplers):
            s.g = g
            x, y = augment_batch(cfg, *s(), g, first_source=i == 0)  # the global batch, then this process's rows
            x, y = dist.shard(x, y)
            batches.append((x.to(device), y.to(device)))
        lr = _lr(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        shared = {"dist": dist} if dist.world > 1 else {}  # one process: the single-process step
        if use_meta:
            parts = meta_step(model, opt, batches, weights, cfg.inner_lr_ratio * lr, np.random.default_rng(step_seed),
                              **shared)
        else:
            parts = erm_step(model, opt, batches, weights, **shared)
        dist.average_buffers(model)
        if not math.isfinite(parts["total"]):
            raise QuintetError(f"loss became {parts['total']} at step {step}; lower --lr")
        timed += 1
        bar.update(1)
        bar.set_postfix(loss=f"{parts['total']:.4f}", lr=f"{lr:.4f}", refresh=False)
        if step % 25 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "lr": lr, **parts})
        if checkpoint_dir is not None and dist.is_main and ((step + 1) % cfg.checkpoint_every == 0
                                                            or step + 1 == cfg.steps):
            save_checkpoint(checkpoint_dir, model, step=step + 1, optimizer=opt,
                            config={"train": cfg.to_dict(), "net": net_cfg.to_dict()},
                            extra={"history": history} | ({} if init_cosine is None
                                                          else {"init_slot_cosine": init_cosine}))
    bar.close()
    seconds = (time.perf_counter() - t0) / max(timed, 1)
    model.eval()
    info: dict[str, Any] = {"history": history, "seconds_per_step": seconds, "resumed_at": start}
    if init_cosine is not None:
        info["init_slot_cosine"] = init_cosine
    return model, info


def load_model(path: str | Path, num_classes: int | None = None) -> tuple[SegmentationNet, dict[str, Any]]:
    """A model from a checkpoint folder (or run folder with ``latest``); checks ``num_classes``."""
    path = Path(path)
    target = latest_checkpoint(path) or path
    cfg_file = target / "config.json"
    if not cfg_file.is_file():
        raise QuintetError(f"no checkpoint at {path} (expected config.json + model.safetensors)")
    config = read_json(cfg_file, "checkpoint configuration")
    if not isinstance(config, dict) or "net" not in config:
        raise QuintetError(f"{cfg_file} is not a segmentation checkpoint (no 'net' entry)")
    try:
        net_cfg = NetConfig.from_dict(config["net"])
    except (TypeError, ValueError, KeyError) as exc:
        raise QuintetError(f"{cfg_file}: the network configuration is damaged ({exc})") from exc
    if num_classes is not None and net_cfg.num_classes != num_classes:
        raise QuintetError(f"checkpoint {target} predicts {net_cfg.num_classes} classes but the data has "
                           f"{num_classes}; use a checkpoint trained on these classes")
    model = build_model(net_cfg)
    state = load_checkpoint(target, model)
    model.to(_device()).eval()
    return model, state


@torch.no_grad()
def predict(model: SegmentationNet, images: np.ndarray, batch: int = 16, gumbel: bool = False,
            return_attention: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Labels ``(N, H, W)`` for ``images uint8 (N, H, W, 3)``; with memory and ``return_attention``
    also the slot attention ``(N, h, w, K)``.  ``gumbel=True`` uses the stochastic read."""
    check_images(images)
    model.eval()
    device = next(model.parameters()).device
    preds, atts = [], []
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch]).to(device)
        if model.memory is not None and gumbel:
            low, _s3, feat = model.encode(x)
            fused, att, _ = model.memory.read(feat, gumbel=True)
            logits = model.decode(low, fused, x.shape[2:])
        else:
            out = model(x)
            logits, att = out["logits"], out.get("attention")
        preds.append(logits.argmax(1).cpu().numpy().astype(np.uint8))
        if att is not None:
            atts.append(att.cpu().numpy())
    labels = np.concatenate(preds)
    if return_attention:
        return labels, (np.concatenate(atts) if atts else None)
    return labels


@torch.no_grad()
def evaluate(model: SegmentationNet, domain: Domain, gumbel: bool = False, seed: int = 0,
             dist: Dist | None = None) -> dict[str, Any]:
    """mIoU (void ignored) of ``model`` on ``domain``: ``{"miou", "iou": [K], "pixel_acc"}``.

    Under ``accelerate launch`` (``dist``, by default this process's place in it) every process
    labels its share of the images and the confusion matrices are summed over processes, so the
    metrics are those of one process; every process must call this. The stochastic Gumbel read
    labels all images on every process (the same noise as one process)."""
    k = model.num_classes
    check_labels(domain.labels, k, what=f"domain {domain.name} labels")
    dist = dist or current()
    part = dist if dist.world > 1 and not gumbel and len(domain) >= dist.world else Dist()
    torch.manual_seed(seed)
    images, labels = part.shard(domain.images, domain.labels)
    pred = predict(model, images, gumbel=gumbel)
    conf = confusion_matrix(torch.as_tensor(pred), torch.as_tensor(labels.astype(np.int64)), k)
    if part.world > 1:
        conf = part.all_sum(conf).round().long()
    iou = iou_from_confusion(conf)
    total = conf.sum().item()
    return {"miou": mean_iou(conf), "iou": [None if np.isnan(v) else float(v) for v in iou],
            "pixel_acc": float(conf.diag().sum().item() / max(total, 1))}


__all__ = ["AUGMENTATIONS", "METHODS", "SCHEDULES", "TrainConfig", "augment_batch", "evaluate", "load_model", "predict",
           "train"]
