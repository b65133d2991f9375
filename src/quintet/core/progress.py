"""The progress bar of every training loop: steps done, rate, and the latest loss."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int, desc: str, initial: int = 0, enabled: bool = True, unit: str = "step") -> Any:
    """A tqdm bar on stderr (``bar.update(1)``, ``bar.set_postfix(loss=...)``, ``bar.close()``); it
    shows the rate itself, and nothing when ``enabled`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True,
                leave=False)
