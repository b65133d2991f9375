"""Training-step and inference time of Pin the Memory vs ERM (and MLDG, memory-only) on the same
tiny DeepLabV3+ at 120×90, one CPU thread, timed round-robin so that all variants see the same
machine load.  Writes benchmarks/results/segmentation.json.

Before timing, the functional forward the meta step uses (``torch.func.functional_call`` with the
module's own parameters) is checked equal to the module's forward for both networks, so the meta
step runs the same network as ERM's plain forward.

Run: ``QUINTET_DATA=../shared/data .venv/bin/python benchmarks/segmentation.py`` (synthetic
frames are used when no data root is found).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from quintet.core.io import atomic_write_json
from quintet.segmentation.data import CAMVID_SOURCES, CAMVID_TARGETS, Domain, augment, to_tensor
from quintet.segmentation.losses import LossWeights
from quintet.segmentation.meta import erm_step, initialise_memory, meta_step
from quintet.segmentation.models import NetConfig, SegmentationNet


def _domains() -> tuple[list[Domain], Domain, str]:
    try:
        from quintet.segmentation.data import camvid_domains

        d = camvid_domains()
        return [d[s] for s in CAMVID_SOURCES], d[CAMVID_TARGETS[0]], "CamVid"
    except Exception:  # no data root: synthetic frames of the same size
        rng = np.random.default_rng(0)
        make = lambda name: Domain(name, rng.integers(0, 255, (32, 90, 120, 3), dtype=np.uint8),  # noqa: E731
                                   rng.integers(0, 11, (32, 90, 120)).astype(np.uint8))
        return [make("a"), make("b")], make("t"), "synthetic"


def _medians(fns: dict, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin (one call of each in turn), so a
    change in machine load during the measurement falls on every function alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def main(repeats: int = 15) -> dict:
    torch.set_num_threads(1)
    sources, target, data = _domains()
    g = torch.Generator().manual_seed(0)
    batches = []
    for d in sources:
        idx = torch.randint(0, len(d), (4,), generator=g).numpy()
        batches.append(augment(to_tensor(d.images[idx]), torch.as_tensor(d.labels[idx].astype(np.int64)), g))
    x_eval = to_tensor(target.images[:16])
    weights = LossWeights()
    out: dict = {"data": data, "batch_per_domain": 4, "image": "120x90", "threads": 1, "repeats": repeats,
                 "platform": platform.platform(), "torch": torch.__version__}

    nets = {}
    for name, memory in (("erm", False), ("pinmem", True)):
        torch.manual_seed(0)
        net = SegmentationNet(NetConfig.tiny(memory=memory))
        if memory:
            initialise_memory(net, batches)
        net.eval()
        with torch.no_grad():
            a = net(x_eval[:4])["logits"]
            b = functional_call(net, dict(net.named_parameters()), (x_eval[:4],))["logits"]
        if not torch.allclose(a, b, atol=1e-5):
            raise SystemExit(f"{name}: functional forward differs from module forward")
        out[f"{name}_functional_forward_max_abs_diff"] = float((a - b).abs().max())
        out[f"{name}_parameters"] = sum(p.numel() for p in net.parameters())
        nets[name] = net

    steps = {
        "erm": (False, lambda net, opt, rng: erm_step(net, opt, batches, weights)),
        "mldg": (False, lambda net, opt, rng: meta_step(net, opt, batches, weights, 0.0125, rng)),
        "memory": (True, lambda net, opt, rng: erm_step(net, opt, batches, weights)),
        "pinmem": (True, lambda net, opt, rng: meta_step(net, opt, batches, weights, 0.0125, rng)),
    }
    def trainer(memory: bool, step):
        torch.manual_seed(0)
        net = SegmentationNet(NetConfig.tiny(memory=memory))
        if memory:
            initialise_memory(net, batches)
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(0)
        return lambda: step(net, opt, rng)

    timed = _medians({name: trainer(memory, step) for name, (memory, step) in steps.items()}, repeats)
    out |= {f"train_step_s_{name}": v for name, v in timed.items()}

    pin = nets["pinmem"]

    def gumbel_read():
        low, _s3, feat = pin.encode(x_eval)
        fused, _a, _s = pin.memory.read(feat, gumbel=True)
        return pin.decode(low, fused, x_eval.shape[2:])

    for net in nets.values():
        net.eval()
    with torch.no_grad():
        timed = _medians({"erm": lambda: nets["erm"](x_eval), "pinmem": lambda: pin(x_eval),
                          "pinmem_gumbel": gumbel_read}, repeats)
    out |= {f"inference_s_per_16_{name}": v for name, v in timed.items()}
    base = out["train_step_s_erm"]
    out["train_step_ratio_vs_erm"] = {k: out[f"train_step_s_{k}"] / base for k in steps}
    out["inference_ratio_pinmem_vs_erm"] = out["inference_s_per_16_pinmem"] / out["inference_s_per_16_erm"]
    path = Path(__file__).resolve().parent / "results" / "segmentation.json"
    atomic_write_json(path, out)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
