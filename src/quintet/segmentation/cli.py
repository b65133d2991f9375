"""``quintet segment ...``: train, evaluate and predict with Pin the Memory and its baselines;
``reproduce`` and ``demo`` for the top-level CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import typer

from quintet.core import options
from quintet.core.errors import QuintetError

app = typer.Typer(help="Pin the Memory: memory-guided domain-generalised segmentation (CamVid domains).",
                  no_args_is_help=True)

METHOD_NAMES = ("erm", "mldg", "memory", "pinmem")


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))


def _parse_size(size: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(H, W)``; typer callback of every ``--size``."""
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{size!r} does not look like 120x90 (WxH)") from None
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise typer.BadParameter(f"{size!r}: width and height must lie in 8..4096")
    return h, w


def _size_option(help: str) -> Any:
    return typer.Option("120x90", callback=lambda value: (_parse_size(value), value)[1], help=help)


def _limit_option() -> Any:
    return typer.Option(None, min=1, max=10_000_000, help="At most this many frames per data set (with --folders).")


def _names(names: str, what: str, folders: Optional[Path]) -> list[str]:
    """The comma-separated names of ``--<what>``, each checked against the known sequences or data
    sets before any data is read."""
    from quintet.segmentation.data import CAMVID_SEQUENCES
    from quintet.segmentation.folders import FOLDERS

    known = tuple(FOLDERS) if folders is not None else CAMVID_SEQUENCES
    kind = "data set" if folders is not None else "CamVid sequence"
    out = [n.strip() for n in names.split(",") if n.strip()]
    if not out:
        raise QuintetError(f"--{what} {names!r} names no {kind}; expected some of: {', '.join(known)}")
    for name in out:
        if name not in known:
            raise QuintetError(f"unknown {kind} {name!r} in --{what}; expected some of: {', '.join(known)}")
    return out


def _domains(names: list[str], what: str, folders: Optional[Path] = None, size: str = "120x90",
             limit: Optional[int] = None) -> list:
    """CamVid sequences by name, or, with ``folders``, the paper's benchmarks under
    ``folders/<name>/`` (gtav, synthia: train split; cityscapes, bdd100k, mapillary: val split)."""
    if folders is not None:
        from quintet.segmentation.folders import load_folder

        return [load_folder(name, folders / name, "train" if name in ("gtav", "synthia") and what == "sources"
                            else "val", _parse_size(size), limit) for name in names]
    from quintet.segmentation.data import camvid_domains

    domains = camvid_domains()
    return [domains[name] for name in names]


@app.command("train")
def train_cmd(
    method: Literal["erm", "mldg", "memory", "pinmem"] = typer.Option("pinmem", help=f"One of: {', '.join(METHOD_NAMES)}."),
    sources: str = typer.Option("0006R0,0016E5", help="Source CamVid sequences (domains), comma-separated."),
    targets: str = typer.Option("0001TP,Seq05VD", help="Unseen CamVid sequences evaluated at the end."),
    steps: int = options.steps(300, "Training iterations."),
    batch: int = typer.Option(4, min=2, max=4096, help="Frames per source domain per step (>= 2: batch norm)."),
    lr: float = options.positive(0.05, "SGD learning rate (poly decay); the inner meta step uses lr/4.", maximum=10.0),
    seed: int = options.seed(),
    width: int = typer.Option(16, min=1, max=512, help="Width multiplier of the tiny trunk: stages (w, 2w, 3w, 4w)."),
    gumbel: bool = typer.Option(False, help="Gumbel-softmax memory read during training (the authors' setting)."),
    augmentation: Literal["weak", "strong"] = typer.Option(
        "weak", help="weak: flips + brightness/contrast jitter; strong: the authors' scale 0.5-2 crops, colour "
                     "jitter and Gaussian blur."),
    schedule: Literal["poly", "exp"] = typer.Option(
        "poly", help="Learning-rate decay: poly (power 0.9) or exp (the authors', x exp(-2.25) over the run)."),
    first_source_meta_aug: bool = typer.Option(
        False, "--first-source-meta-aug", help="Give the first source domain the authors' strong colour jitter + "
                                               "blur (their MLDG / Pin the Memory runs do)."),
    net: Literal["tiny", "resnet50"] = typer.Option("tiny", help="tiny (width-scaled, CPU) or resnet50 (the paper's trunk, GPU)."),
    folders: Optional[Path] = options.input_folder(None, "Root holding gtav/ synthia/ cityscapes/ bdd100k/ mapillary/; "
                                                   "then --sources/--targets name those data sets (19 classes)."),
    size: str = _size_option("WxH images are resized to (with --folders)."),
    limit: Optional[int] = _limit_option(),
    out: Optional[Path] = options.output_folder(None, "Run folder (default runs/segment/<method>-seed<seed>)."),
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in OUT/checkpoints if any."),
    checkpoint_every: int = options.steps(100, "Steps between checkpoints."),
) -> None:
    """Train on source domains; checkpoints into OUT/checkpoints (resumable); reports unseen mIoU.
    Under `accelerate launch` the processes split every batch and the unseen domains; the main
    process writes the run."""
    import shutil

    from quintet.core.distributed import current
    from quintet.core.io import check_checkpoint, latest_checkpoint
    from quintet.core.runs import Run, markdown_table
    from quintet.segmentation.experiments import TrainConfig, evaluate, train
    from quintet.segmentation.models import NetConfig

    _threads()
    src_names, tgt_names = _names(sources, "sources", folders), _names(targets, "targets", folders)
    shared = sorted(set(src_names) & set(tgt_names))
    if shared:
        raise QuintetError(f"--targets {','.join(shared)} is also a source domain; unseen domains must differ "
                           "from --sources")
    classes = 19 if folders is not None else 11
    if net == "tiny":
        net_cfg = NetConfig.tiny(num_classes=classes, stem=width, widths=(width, 2 * width, 3 * width, 4 * width),
                                 aspp_dim=4 * width, decoder_dim=4 * width, gumbel_read=gumbel)
    else:
        net_cfg = NetConfig.resnet50(num_classes=classes, gumbel_read=gumbel)
    cfg = TrainConfig(method=method, seed=seed, steps=steps, batch=batch, lr=lr, net=net_cfg.to_dict(),
                      augmentation=augmentation, schedule=schedule, first_source_meta_aug=first_source_meta_aug,
                      checkpoint_every=checkpoint_every).validate()
    out = out or Path("runs/segment") / f"{method}-seed{seed}"
    ckpt = out / "checkpoints"
    dist = current()
    if not resume and ckpt.exists() and dist.is_main:
        shutil.rmtree(ckpt)
    dist.barrier()  # no process looks for a checkpoint before the main process has removed them
    if latest_checkpoint(ckpt) is not None:  # a damaged or other-configuration checkpoint: before the data
        check_checkpoint(ckpt, expected_config={"train": cfg.to_dict()})
    src = _domains(src_names, "sources", folders, size, limit)
    tgt = _domains(tgt_names, "targets", folders, size, limit)
    run = Run(out, cfg) if dist.is_main else None  # under `accelerate launch` the main process writes the run
    model, info = train(cfg, src, checkpoint_dir=ckpt, log=typer.echo, progress=True)
    rows = [{"domain": d.name, **{k: v for k, v in evaluate(model, d).items() if k != "iou"}} for d in tgt]
    if run is None:
        return
    run.log_metrics({"unseen": rows, "history": info["history"], "seconds_per_step": info["seconds_per_step"]})
    table = markdown_table(rows)
    run.finish(f"# segment train: {method}, seed {seed}\n\n{table}")
    typer.echo(table)
    typer.echo(f"checkpoint: {ckpt}")


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, file_okay=False,
                                      help="A run's checkpoints folder or one checkpoint-N folder."),
    targets: str = typer.Option("0001TP,Seq05VD", help="CamVid sequences to score."),
    gumbel: bool = typer.Option(False, help="Use the stochastic Gumbel read instead of the softmax read."),
    folders: Optional[Path] = options.input_folder(None, "Root of the paper's benchmarks (see train --folders)."),
    size: str = _size_option("WxH images are resized to (with --folders)."),
    limit: Optional[int] = _limit_option(),
) -> None:
    """mIoU (void ignored) of a checkpoint on CamVid sequences (or the paper's benchmarks)."""
    from quintet.core.runs import markdown_table
    from quintet.datasets import CAMVID_CLASSES
    from quintet.segmentation.experiments import evaluate, load_model

    _threads()
    names = _names(targets, "targets", folders)
    model, _ = load_model(checkpoint, num_classes=19 if folders is not None else len(CAMVID_CLASSES))
    rows = []
    for d in _domains(names, "targets", folders, size, limit):
        r = evaluate(model, d, gumbel=gumbel)
        rows.append({"domain": d.name, "mIoU": r["miou"], "pixel acc": r["pixel_acc"]})
    typer.echo(markdown_table(rows))


@app.command("predict")
def predict_cmd(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="An RGB image file (PNG/JPEG)."),
    checkpoint: Path = options.input_folder(..., "A run's checkpoints folder.", "--checkpoint", "-c"),
    out: Optional[Path] = options.output_file(None, "Output PNG of colour-coded labels (default IMAGE.seg.png)."),
    resize: bool = typer.Option(False, help="Resize the image to the training size instead of refusing it."),
    size: str = _size_option("Training size WxH the checkpoint expects."),
) -> None:
    """Segment one image and save a colour-coded label PNG."""
    import numpy as np
    from PIL import Image

    from quintet.core.io import atomic_write
    from quintet.segmentation.data import check_images
    from quintet.segmentation.experiments import load_model, predict
    from quintet.segmentation.folders import read_image
    from quintet.segmentation.plots import colorize, palette_for

    _threads()
    h, w = _parse_size(size)
    model, _ = load_model(checkpoint)
    img = read_image(image, (h, w) if resize else None)
    check_images(img[None], (h, w), what=f"image {image}")
    labels = predict(model, img[None])[0]
    out = out or image.with_suffix(".seg.png")
    with atomic_write(out, "wb") as fh:
        Image.fromarray(colorize(labels, palette_for(model.num_classes))).save(fh, format="PNG")
    counts = np.bincount(labels.ravel(), minlength=model.num_classes)
    typer.echo(f"wrote {out}; pixels per class: {counts.tolist()}")


def reproduce(out: Path, quick: bool, seed: int, finished_only: bool = False) -> dict[str, Any]:
    """Unseen-CamVid-domain mIoU of ERM, MLDG, memory-only, Pin the Memory and loss ablations."""
    from quintet.segmentation.reproduce import run_reproduce

    return run_reproduce(Path(out), quick=quick, seed=seed, finished_only=finished_only)


def demo(run) -> str:
    """Pin the Memory on procedurally generated two-domain street-like scenes (no data root)."""
    from quintet.segmentation.demo import run_demo

    return run_demo(run)
