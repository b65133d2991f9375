"""Device placement through ``accelerate``: the same loop runs on CPU, one GPU or many."""

from __future__ import annotations

import torch
from accelerate import Accelerator


def make_accelerator(cpu: bool = False, mixed_precision: str = "no") -> Accelerator:
    """An :class:`accelerate.Accelerator`; ``cpu=True`` forces the CPU even where a GPU exists.

    Launch a script with ``accelerate launch`` to spread the loop over GPUs or machines.
    """
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision)


def default_device() -> torch.device:
    """The device ``accelerate`` would place a model on in this process."""
    return make_accelerator().device
