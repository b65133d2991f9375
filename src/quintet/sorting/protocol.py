"""The ranking experiment at the papers' protocol, trained in resumable pieces.

The protocol of ICML 2021 Sec. 5.1 / ICLR 2022 Sec. 6 and of the authors' script: the CNN of
:class:`~quintet.sorting.ranking.ScoreCNN` at 32/64 channels, batch 100 sets, Adam at ``10^-3.5``,
the MNIST training split cut into 55 000 training and 5 000 validation images, sets drawn digit by
digit (equal values possible), 100 000 steps, and the test score taken at the best validation score.

:func:`run_protocol` trains several configurations round-robin, ``piece`` steps at a time, each in
its own folder with checkpoints, until they reach their steps or the time budget is spent; a later
call continues where the last one stopped.  Every result row says how many steps its run got.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from quintet.core.io import latest_checkpoint
from quintet.sorting.ranking import DigitSource, RankingConfig, train_ranking

__all__ = ["PAPER_STEPS", "PROTOCOL_SIZES", "PROTOCOL_NETWORKS", "protocol_config", "run_protocol", "steps_done"]

#: training steps of the papers' runs (authors' script default)
PAPER_STEPS = 100_000
PROTOCOL_SIZES = (3, 5, 7)
PROTOCOL_NETWORKS = ("odd_even", "bitonic")


def protocol_config(n: int, network: str, seed: int = 0, steps: int = PAPER_STEPS, **changes) -> RankingConfig:
    """The papers' setting for one ``(n, network)``.  Validation scores 1 000 sets every 100 steps
    and the test score uses 2 000 sets (the script: 5 000 every 1 000 steps, and 10 000)."""
    cfg = RankingConfig(n=n, network=network, steps=steps, batch_size=100, lr=10 ** -3.5, width=(32, 64),
                        ties=True, valid_size=5000, valid_sets=1000, eval_every=100, eval_sets=2000,
                        checkpoint_every=50, seed=seed)
    return replace(cfg, **changes)


def tag(cfg: RankingConfig) -> str:
    return f"{cfg.network}-n{cfg.n}"


def steps_done(folder: Path) -> int:
    """The step of the latest checkpoint in ``folder`` (0 when there is none)."""
    ckpt = latest_checkpoint(folder / "checkpoints")
    if ckpt is None:
        return 0
    return int(json.loads((ckpt / "trainer_state.json").read_text())["step"])


def run_protocol(configs: list[RankingConfig], source: DigitSource, work: Path, budget_s: float | None = None,
                 piece: int = 50, log: Callable[[str], None] = print, progress: bool = False,
                 device: str = "cpu") -> list[dict]:
    """Train ``configs`` round-robin in pieces of ``piece`` steps under ``work/<network>-n<n>``
    until each has ``cfg.steps`` steps or ``budget_s`` seconds have passed; then score each on the
    test split (at its best validation step).  Returns one result dict per configuration."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    left = lambda: None if deadline is None else deadline - time.monotonic()  # noqa: E731
    while True:
        pending = [c for c in configs if steps_done(work / tag(c)) < c.steps]
        if not pending or (deadline is not None and left() <= 0):
            break
        for cfg in pending:
            if deadline is not None and left() <= 0:
                break
            folder = work / tag(cfg)
            train_ranking(cfg, source, out=folder, until=steps_done(folder) + piece, time_limit=left(),
                          evaluate=False, progress=progress, device=device,
                          log=lambda s, t=tag(cfg): log(f"[{t}] {s}"))
    results = []
    for cfg in configs:
        res = train_ranking(cfg, source, out=work / tag(cfg), until=0, log=lambda s: None, device=device)
        res.pop("model")
        res["steps"] = steps_done(work / tag(cfg))
        results.append(res)
        log(f"[{tag(cfg)}] {res['steps']} steps: test exact match {res['exact_match']:.3f} "
            f"(best validation at step {res['best_step']})")
    return results

