"""Run directories and Markdown tables."""

from __future__ import annotations

import json
from dataclasses import dataclass

from quintet.core import Run, markdown_table, seed_everything
from quintet.core.plotting import plt


@dataclass(frozen=True)
class Cfg:
    n: int = 5
    method: str = "odd_even"


def test_run_writes_results_json_markdown_and_png(tmp_path):
    run = Run(tmp_path / "r", Cfg())
    run.log_metrics({"acc": 0.5})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = run.save_figure(fig, "curve.png")
    run.finish("# title\n")
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["config"] == {"n": 5, "method": "odd_even"}
    assert data["metrics"] == {"acc": 0.5}
    assert data["environment"]["torch"].startswith("2.")
    assert "git_commit" in data
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "r" / "results.md").read_text() == "# title\n"


def test_markdown_table_formats_rows():
    text = markdown_table([{"method": "erm", "acc": 0.123456}, {"method": "dro", "acc": 0.5}])
    assert text.splitlines() == ["| method | acc |", "|---|---|", "| erm | 0.1235 |", "| dro | 0.5 |"]


def test_seed_everything_repeats():
    import torch

    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))
