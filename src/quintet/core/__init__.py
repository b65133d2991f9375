"""Helpers that several methods really share: errors, atomic I/O, checkpoints, runs, seeds, devices,
and data-parallel training over several processes."""

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError
from quintet.core.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from quintet.core.runs import Run, markdown_table
from quintet.core.seed import seed_everything

__all__ = [
    "Dist",
    "QuintetError",
    "Run",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_checkpoint",
    "current",
    "latest_checkpoint",
    "load_checkpoint",
    "markdown_table",
    "save_checkpoint",
    "seed_everything",
]
