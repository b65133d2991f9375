"""Tiny segmentation runs (ERM, memory only, MLDG, Pin the Memory), shared by the 2-process launch and the
1-process reference in tests/test_distributed_segmentation.py.

Run as a script under ``accelerate launch``: ``seg_scenarios.py OUT SCENARIO... [--kill-after N]``
trains each scenario into ``OUT/<scenario>``; ``--kill-after N`` ends process 1 abruptly after its
N-th optimiser step. Each scenario records (tests/distributed/dist_scenarios.py ``record``) the
model's parameters and buffers, the loss history, the evaluation on an unseen domain and the
files the library wrote.

Two kinds of scenario:

* ``*_frozen``: batch norm uses fixed statistics (its affine parameters still train) and the
  auxiliary head has no dropout, so every step depends on the global batch alone and the
  parameters must equal one process's on the combined batch;
* the others train with batch norm as released (statistics of each process's rows): the
  processes must stay identical, but the parameters differ from one process.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from dist_scenarios import record, written_files  # noqa: E402

STEPS, BATCH = 6, 5  # 5 frames per domain: 3 + 2 on 2 processes
TARGET_FRAMES = 7  # 4 + 3


@contextmanager
def frozen_norm() -> Iterator[None]:
    """Batch norm with fixed statistics (mean 0, variance 1: an affine layer) and no dropout."""

    class FrozenBatchNorm2d(torch.nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    class NoDropout(torch.nn.Identity):
        def __init__(self, *args, **kwargs):
            super().__init__()

    originals = torch.nn.BatchNorm2d, torch.nn.Dropout2d
    torch.nn.BatchNorm2d, torch.nn.Dropout2d = FrozenBatchNorm2d, NoDropout
    try:
        yield
    finally:
        torch.nn.BatchNorm2d, torch.nn.Dropout2d = originals


def _with_void(domain, seed: int):
    """A void (255) rectangle of random size in each frame, so frames count different pixels."""
    rng = np.random.default_rng(seed)
    labels = domain.labels.copy()
    h, w = labels.shape[1:]
    for frame in labels:
        top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
        frame[top:top + rng.integers(1, h // 2), left:left + rng.integers(1, w // 2)] = 255
    domain.labels = labels
    return domain


def domains():
    """Two source styles (13 and 11 frames) and an unseen one (7 frames), 24x32 pixels, 4 classes."""
    from quintet.segmentation.demo import synthetic_domain

    size = (24, 32)
    sources = [_with_void(synthetic_domain("sunny", 13, 1, size), 1),
               _with_void(synthetic_domain("overcast", 11, 2, size), 2)]
    return sources, _with_void(synthetic_domain("dusk", TARGET_FRAMES, 3, size), 3)


def config(method: str, steps: int = STEPS):
    from quintet.segmentation.experiments import TrainConfig
    from quintet.segmentation.models import NetConfig

    net = NetConfig.tiny(num_classes=4, stem=4, widths=(4, 8, 8, 8), aspp_dim=8, low_dim=4, decoder_dim=8)
    return TrainConfig(method=method, steps=steps, batch=BATCH, lr=0.02, init_frames=9, checkpoint_every=2,
                       net=net.to_dict())


def build(method: str, frozen: bool) -> torch.nn.Module:
    """An untrained model of the scenario's shape (to load recorded weights into)."""
    from quintet.segmentation.models import SegmentationNet

    with frozen_norm() if frozen else nullcontext():
        return SegmentationNet(config(method).net_config())


def segment(out: Path, method: str, frozen: bool, steps: int = STEPS) -> tuple[torch.nn.Module, dict]:
    from quintet.segmentation.experiments import evaluate, train

    sources, target = domains()
    with frozen_norm() if frozen else nullcontext():
        model, info = train(config(method, steps), sources, checkpoint_dir=out / "run", log=lambda s: None)
        result = evaluate(model, target)
    return model, {"history": info["history"], "target": result}


SCENARIOS = {f"seg_{method}{'_frozen' if frozen else ''}": (method, frozen)
             for method in ("erm", "memory", "mldg", "pinmem") for frozen in (True, False)}


def run(name: str, out: Path, **kwargs) -> None:
    from quintet.core.distributed import current

    method, frozen = SCENARIOS[name]
    rank = current().rank
    with written_files(hugging_face=False) as writes:
        model, metrics = segment(out, method, frozen, **kwargs)
    record(out, rank, model, metrics, writes)


if __name__ == "__main__":
    from dist_worker import launch_main

    launch_main(run, takes_steps=lambda name: False)
