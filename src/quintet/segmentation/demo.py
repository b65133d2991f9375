"""A < 40 s tour on procedurally generated street-like scenes (no data root needed).

Scenes have 4 classes (sky, building, road, car) with a random horizon, building skyline and
cars; each *domain* paints them with its own colours, brightness and noise.  Two source domains
train ERM and Pin the Memory; a darker, bluish "dusk" domain is unseen.
"""

from __future__ import annotations

import time

import numpy as np

from quintet.segmentation.data import Domain

DEMO_CLASSES = ["sky", "building", "road", "car"]
STYLES = {
    "sunny": {"colors": [(135, 190, 240), (170, 120, 90), (110, 110, 110), (200, 30, 30)], "gain": 1.0, "noise": 12},
    "overcast": {"colors": [(200, 200, 205), (120, 115, 110), (90, 90, 95), (40, 60, 170)], "gain": 0.9, "noise": 16},
    "dusk": {"colors": [(70, 80, 140), (90, 70, 80), (60, 60, 75), (150, 40, 60)], "gain": 0.55, "noise": 14},
}


def synthetic_domain(style: str, n: int, seed: int, size: tuple[int, int] = (48, 64)) -> Domain:
    """``n`` scenes in one style: images ``uint8 (n, H, W, 3)``, labels ``(n, H, W)`` in 0..3."""
    rng = np.random.default_rng(seed)
    h, w = size
    spec = STYLES[style]
    images = np.zeros((n, h, w, 3), dtype=np.float32)
    labels = np.zeros((n, h, w), dtype=np.uint8)
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    for i in range(n):
        horizon = rng.integers(h // 3, h // 2 + 4)
        lab = np.where(rows >= horizon, 2, 0).repeat(w, 1)
        x = 0
        while x < w:  # skyline of buildings
            bw, top = rng.integers(6, 16), rng.integers(2, horizon - 2)
            lab[top:horizon, x:x + bw] = 1
            x += bw + rng.integers(0, 6)
        for _ in range(rng.integers(1, 4)):  # cars on the road
            cw, ch = rng.integers(8, 16), rng.integers(4, 8)
            cx, cy = rng.integers(0, w - cw), rng.integers(horizon, h - ch)
            lab[cy:cy + ch, cx:cx + cw] = 3
        palette = np.array(spec["colors"], dtype=np.float32)
        img = palette[lab] * spec["gain"] * rng.uniform(0.85, 1.15)
        img += 0.15 * spec["gain"] * (rows / h * 40.0)[..., None] + 0 * cols[..., None]
        img += rng.normal(0, spec["noise"], img.shape)
        images[i], labels[i] = img, lab
    return Domain(style, np.clip(images, 0, 255).astype(np.uint8), labels)


def run_demo(run) -> str:
    """Train ERM and Pin the Memory briefly on two synthetic domains; score the unseen one."""
    import torch

    from quintet.segmentation.experiments import TrainConfig, evaluate, predict, train
    from quintet.segmentation.models import NetConfig
    from quintet.segmentation.plots import attention_maps, prediction_grid

    torch.set_num_threads(1)
    start = time.perf_counter()
    sources = [synthetic_domain("sunny", 48, 1), synthetic_domain("overcast", 48, 2)]
    target = synthetic_domain("dusk", 32, 3)
    net = NetConfig.tiny(num_classes=4, stem=8, widths=(8, 16, 24, 32), aspp_dim=32, decoder_dim=32, low_dim=12)
    results, models = {}, {}
    for method in ("erm", "pinmem"):
        cfg = TrainConfig(method=method, steps=160, batch=4, lr=0.05, net=net.to_dict(), checkpoint_every=10_000,
                          init_frames=32)
        model, info = train(cfg, sources)
        models[method] = model
        results[method] = {"miou": evaluate(model, target)["miou"], "s_per_step": info["seconds_per_step"]}
    idx = np.arange(3)
    preds = {m: predict(models[m], target.images[idx]) for m in models}
    fig = prediction_grid(target.images[idx], target.labels[idx], preds, [f"dusk #{i}" for i in idx], DEMO_CLASSES)
    run.save_figure(fig, "segmentation_demo_predictions.png")
    _, att = predict(models["pinmem"], target.images[:1], return_attention=True)
    fig = attention_maps(target.images[0], att[0], DEMO_CLASSES)
    run.save_figure(fig, "segmentation_demo_attention.png")
    seconds = time.perf_counter() - start
    run.log_metrics({"segmentation_demo": results})
    lines = [
        "## segmentation — Pin the Memory (synthetic street scenes)",
        "",
        "Two painted source domains (sunny, overcast) train ERM and Pin the Memory for 160 steps "
        "(tiny DeepLabV3+); the darker, bluish *dusk* domain is never seen in training.",
        "",
        "| method | unseen dusk mIoU | s / step |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {r['miou']:.3f} | {r['s_per_step']:.3f} |" for m, r in results.items()]
    better = results["pinmem"]["miou"] > results["erm"]["miou"]
    lines += ["", ("Pin the Memory is ahead of ERM on this toy shift." if better else
                   "On this toy shift (a pure colour/brightness change, 160 steps) Pin the Memory does not beat "
                   "ERM; the real-image comparison is `quintet reproduce segmentation`."),
              "", f"Ran in {seconds:.1f} s.", "",
              "![predictions](segmentation_demo_predictions.png)", "",
              "![memory attention per class](segmentation_demo_attention.png)", ""]
    return "\n".join(lines)


__all__ = ["DEMO_CLASSES", "STYLES", "run_demo", "synthetic_domain"]
