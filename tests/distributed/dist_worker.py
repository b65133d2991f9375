"""What ``accelerate launch`` runs on each process: ``dist_worker.py OUT SCENARIO... [--steps N]
[--kill-after N]`` trains each scenario into ``OUT/<scenario>``. ``--kill-after N`` ends process 1
abruptly after its N-th optimiser step (a crash on one rank)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402


def launch_main(run: Callable[..., None], takes_steps: Callable[[str], bool] = lambda name: True) -> None:
    """Parse ``OUT SCENARIO... [--steps N] [--kill-after N]`` and ``run`` each scenario into
    ``OUT/<scenario>``; ``--steps`` goes to the scenarios for which ``takes_steps`` is true."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("scenarios", nargs="+")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--kill-after", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from quintet.core.distributed import current

    if args.kill_after is not None and current().rank == 1:
        done = [0]

        def crash(optimizer, *_):
            done[0] += 1
            if done[0] >= args.kill_after:
                os._exit(3)

        register_optimizer_step_post_hook(crash)
    for name in args.scenarios:
        kwargs = {"steps": args.steps} if args.steps is not None and takes_steps(name) else {}
        run(name, args.out / name, **kwargs)


if __name__ == "__main__":
    from dist_scenarios import run

    launch_main(run, takes_steps=lambda name: name == "sorting")
