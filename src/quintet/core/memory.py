"""Refuse a run whose estimated memory exceeds what the machine has, before allocating it."""

from __future__ import annotations

import os

from quintet.core.errors import QuintetError

GIB = 1 << 30


def available_bytes() -> int:
    """Memory the kernel could hand this process now (``MemAvailable``), else total physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(needed: int, what: str, max_memory_gb: float | None = None) -> None:
    """Raise a :class:`QuintetError` with the estimate when ``needed`` bytes exceed the limit
    (``max_memory_gb``, else the memory available now)."""
    limit = int(max_memory_gb * GIB) if max_memory_gb is not None else available_bytes()
    if needed > limit:
        source = "--max-memory" if max_memory_gb is not None else "available on this machine"
        raise QuintetError(f"{what} needs about {needed / GIB:.1f} GiB, more than the {limit / GIB:.1f} GiB "
                           f"{source}; choose a smaller size")
