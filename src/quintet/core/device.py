"""Device placement through ``accelerate``: the same loop runs on CPU, one GPU or many."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from quintet.core.distributed import current, use_cpu


def make_accelerator(cpu: bool = False, mixed_precision: str = "no") -> Accelerator:
    """An :class:`accelerate.Accelerator`; ``cpu=True`` forces the CPU even where a GPU exists.

    Launch a script with ``accelerate launch`` to spread the loop over GPUs or machines; on a
    machine without a GPU the processes form a gloo group (see :mod:`quintet.core.distributed`).
    """
    return Accelerator(cpu=cpu or use_cpu(), mixed_precision=mixed_precision)


def default_device() -> torch.device:
    """The device ``accelerate`` would place a model on in this process."""
    return current().device
