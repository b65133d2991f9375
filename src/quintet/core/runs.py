"""Run directories: results.json (config, metrics, environment, git commit), results.md, PNG plots."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from quintet.core.io import atomic_write, atomic_write_json, atomic_write_text


def environment() -> dict[str, Any]:
    """Versions and machine facts stored with every result."""
    import numpy
    import torch

    from quintet import __version__

    return {
        "quintet": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the source tree, with ``-dirty`` when it has changes; ``None`` outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]] | Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table from dict rows (headers = union of keys, in order) or lists."""
    rows = list(rows)
    if rows and isinstance(rows[0], dict):
        if headers is None:
            headers = list(dict.fromkeys(k for row in rows for k in row))
        body = [[_fmt(row.get(h, "")) for h in headers] for row in rows]
    else:
        if headers is None:
            raise ValueError("markdown_table needs headers for list rows")
        body = [[_fmt(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


class Run:
    """A directory that collects one run's outputs.

    >>> run = Run.create("runs", "sorting-quick", config=cfg)
    >>> run.log_metrics({"exact_match": 0.8}); run.save_figure(fig, "loss.png"); run.finish(md)
    """

    def __init__(self, path: str | os.PathLike, config: Any = None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.config = asdict(config) if is_dataclass(config) else (config or {})
        self.metrics: dict[str, Any] = {}
        self.started = _dt.datetime.now(_dt.timezone.utc)

    @classmethod
    def create(cls, root: str | os.PathLike, name: str, config: Any = None, timestamp: bool = True) -> "Run":
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path(root) / (f"{name}-{stamp}" if timestamp else name), config)

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics.update(metrics)
        self.write_json()

    def write_json(self) -> Path:
        finished = _dt.datetime.now(_dt.timezone.utc)
        return atomic_write_json(
            self.path / "results.json",
            {
                "config": self.config,
                "metrics": self.metrics,
                "environment": environment(),
                "git_commit": git_commit(),
                "started": self.started.isoformat(timespec="seconds"),
                "seconds": round((finished - self.started).total_seconds(), 2),
            },
        )

    def save_figure(self, fig: Any, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG (atomically) and close it."""
        import matplotlib.pyplot as plt

        target = self.path / name
        with atomic_write(target, "wb") as handle:
            fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return target

    def write_markdown(self, text: str, name: str = "results.md") -> Path:
        return atomic_write_text(self.path / name, text)

    def finish(self, markdown: str | None = None) -> Path:
        """Write results.json and (optionally) results.md; return the run directory."""
        self.write_json()
        if markdown is not None:
            self.write_markdown(markdown)
        return self.path


def images_markdown(paths: Iterable[str | os.PathLike], base: str | os.PathLike) -> str:
    """Markdown image links, relative to ``base``."""
    return "\n".join(f"![{Path(p).stem}]({os.path.relpath(p, base)})" for p in paths) + "\n"
