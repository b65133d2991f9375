"""Command-line options every method shares, with their ranges and path kinds declared once.

A range is checked by typer where the option is declared (``min=``/``max=``); a path says whether
it is read (``exists=True``) or written (a folder: ``file_okay=False``; a file: ``dir_okay=False``).
:func:`output_file` also refuses a file whose folder does not exist (it is never created) or whose
suffix the writer does not produce, and :func:`finite` refuses ``nan``/``inf``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import typer

MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
#: upper bound of step/epoch counts: beyond it a run would not end on any machine
MAX_STEPS = 10_000_000


def seed(default: int = 0, help: str = "Random seed.") -> Any:
    return typer.Option(default, min=0, max=MAX_SEED, help=help)


def threads(default: int = 1, help: str = "torch CPU threads.") -> Any:
    return typer.Option(default, min=1, max=MAX_THREADS, help=help)


def steps(default: Optional[int], help: str, minimum: int = 1) -> Any:
    return typer.Option(default, min=minimum, max=MAX_STEPS, help=help)


def finite(value: Optional[float]) -> Optional[float]:
    """Typer callback: refuse ``nan`` and ``inf``."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(default: Optional[float], help: str, maximum: float = 1e6) -> Any:
    """A float > 0 (typer has no open bound, so 0 is refused here)."""
    def check(value: Optional[float]) -> Optional[float]:
        if value is not None and not (math.isfinite(value) and 0 < value <= maximum):
            raise typer.BadParameter(f"{value} is not in (0, {maximum:g}]")
        return value
    return typer.Option(default, min=0, max=maximum, callback=check, help=help)


def fraction(default: float, help: str) -> Any:
    """A float in [0, 1]."""
    return typer.Option(default, min=0.0, max=1.0, callback=finite, help=help)


def choice(default: Optional[str], names: Union[Iterable[str], Callable[[], Iterable[str]]], help: str,
           *decls: str, kind: str = "value") -> Any:
    """Text that must be one of ``names`` (or a function returning them, asked when the option is
    read), refused naming the option, the ``kind`` of value and the allowed values before any data
    is read."""
    def check(value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        allowed = tuple(names() if callable(names) else names)
        if value not in allowed:
            raise typer.BadParameter(f"unknown {kind} {value!r}; expected one of: {', '.join(allowed)}")
        return value
    return typer.Option(default, *decls, callback=check, help=help)


def input_file(default: Any, help: str, *decls: str) -> Any:
    return typer.Option(default, *decls, exists=True, dir_okay=False, readable=True, help=help)


def input_folder(default: Any, help: str, *decls: str) -> Any:
    return typer.Option(default, *decls, exists=True, file_okay=False, help=help)


def output_folder(default: Any, help: str, *decls: str) -> Any:
    """A folder that is written (created with its parents, as the user named it)."""
    return typer.Option(default, *decls, file_okay=False, callback=_writable_folder, help=help)


def output_file(default: Any, help: str, suffixes: tuple[str, ...] = (".png",), *decls: str) -> Any:
    """A file that is written: its folder must exist and its suffix be one of ``suffixes``."""
    def check(value: Optional[Path]) -> Optional[Path]:
        if value is None:
            return value
        if value.suffix.lower() not in suffixes:
            raise typer.BadParameter(f"{str(value)!r} must end in {' or '.join(suffixes)} (the format written)")
        if not value.parent.is_dir():
            raise typer.BadParameter(f"the folder of {str(value)!r} does not exist (it is not created)")
        return value
    return typer.Option(default, *decls, dir_okay=False, callback=check, help=help)


def _writable_folder(value: Optional[Path]) -> Optional[Path]:
    """Refuse a folder that is a file, or lies under one, before any work starts."""
    if value is None:
        return value
    for parent in (value, *value.parents):
        if parent.exists():
            if not parent.is_dir():
                raise typer.BadParameter(f"{str(parent)!r} is a file, not a folder")
            break
    return value
