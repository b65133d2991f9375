"""``quintet logic ...``: train, compile, export, bench; plus ``reproduce`` and ``demo`` for the
top-level CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

import typer

from quintet.core import options
from quintet.core.distributed import current
from quintet.core.errors import QuintetError

app = typer.Typer(help="Differentiable logic gate networks: train, discretise, compile to C/Verilog.",
                  no_args_is_help=True)


def _threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _datasets() -> tuple[str, ...]:
    from quintet.logic.data import DATASETS

    return DATASETS


def _schemes() -> tuple[str, ...]:
    from quintet.logic.wiring import SCHEMES

    return SCHEMES


def _inits() -> tuple[str, ...]:
    from quintet.logic.layers import INITS

    return INITS


def _archs() -> tuple[str, ...]:
    from quintet.logic.train import ARCHS

    return ARCHS


def _module_name(value: str) -> str:
    """Typer callback of ``--module``: a Verilog module name is an identifier."""
    if not value.isidentifier():
        raise typer.BadParameter(f"{value!r} is not a Verilog module name (letters, digits and _, "
                                 "not starting with a digit)")
    return value


def _folder_exists(value: Path) -> Path:
    """Typer callback of a written file: its folder must exist (it is not created)."""
    if not value.parent.is_dir():
        raise typer.BadParameter(f"the folder of {str(value)!r} does not exist (it is not created)")
    return value


#: generous upper bounds of the network's shape and of the data read
MAX_WIDTH = 10_000_000
MAX_DEPTH = 1000
MAX_ROWS = 100_000_000


@app.command("train")
def train_cmd(
    dataset: str = options.choice("monk1", _datasets, "monk1, monk2, monk3, adult, breast_cancer, mnist or mnist20x20.",
                                  kind="data set"),
    width: int = typer.Option(60, min=1, max=MAX_WIDTH, help="Gates per layer."),
    depth: int = typer.Option(4, min=1, max=MAX_DEPTH, help="Logic layers."),
    tau: float = options.positive(1.0, "GroupSum temperature (> 0)."),
    lr: float = options.positive(0.01, "Adam learning rate (> 0).", maximum=10.0),
    batch_size: int = typer.Option(100, min=1, max=MAX_ROWS, help="Training rows per step."),
    steps: int = options.steps(2000, "Training steps (0: evaluate the initial or resumed network).", minimum=0),
    connections: str = options.choice("unique", _schemes, "Wiring scheme: random or unique.", kind="wiring scheme"),
    init: str = options.choice("normal", _inits, "normal (the 2022 paper) or residual (the 2024 follow-up).",
                               kind="initialisation"),
    arch: str = options.choice("dense", _archs,
                               "dense (randomly connected layers) or conv (logic trees + OR pooling; mnist).",
                               kind="architecture"),
    channels: str = typer.Option("16,32", help="conv: channels of the two tree stages."),
    grad_factor: float = options.positive(1.0, "Gradient scale between layers (deep nets; > 0).", maximum=1e3),
    eval_every: int = options.steps(500, "Steps between evaluations."),
    limit: Optional[int] = typer.Option(None, min=1, max=MAX_ROWS, help="Use only the first LIMIT training rows."),
    out: Path = options.output_folder(Path("runs/logic-train"), "Run folder (checkpoints; resumes)."),
    threads: int = options.threads(),
    seed: int = options.seed(),
) -> None:
    """Train a logic gate network; checkpoints go to OUT and a second call resumes."""
    from quintet.core.runs import Run
    from quintet.logic.data import load_binary
    from quintet.logic.train import TrainConfig, train

    _threads(threads)
    try:
        pair = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise QuintetError(f"--channels must be two comma-separated integers, got {channels!r}") from None
    cfg = TrainConfig(dataset=dataset, width=width, depth=depth, tau=tau, lr=lr, batch_size=batch_size,
                      steps=steps, connections=connections, init=init, grad_factor=grad_factor,
                      eval_every=eval_every, seed=seed, arch=arch, channels=pair)
    data = load_binary(dataset, limit=limit)
    result = train(cfg, data, out=out, log=typer.echo)
    if not current().is_main:
        return
    result.pop("model")
    run = Run(out, result.pop("config"))
    run.log_metrics(result)
    run.finish()
    typer.echo(json.dumps({k: result[k] for k in ("steps", "gates", "test_acc_discrete", "test_acc_relaxed",
                                                  "train_seconds")}))


@app.command("compile")
def compile_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, file_okay=False,
                                      help="Run folder or checkpoint folder from `quintet logic train`."),
    backend: str = options.choice("auto", ("auto", "c", "numpy"), "c, numpy or auto.", kind="backend"),
    evaluate: bool = typer.Option(True, help="Check against PyTorch and time on the test split."),
) -> None:
    """Compile a trained network for bit-parallel inference; report compile time, accuracy, speed."""
    import numpy as np
    import torch

    from quintet.logic.compiled import CompiledLogicNet
    from quintet.logic.data import load_binary
    from quintet.logic.train import load_checkpoint_config, load_model

    model = load_model(checkpoint)
    net = CompiledLogicNet.from_model(model, backend=backend)
    report = {"backend": net.backend, "gates": net.net.gate_count, "compile_seconds": round(net.compile_seconds, 3),
              "netlist_sha256": net.net.digest()}
    if evaluate:
        data = load_binary(load_checkpoint_config(checkpoint)["dataset"])
        start = time.perf_counter()
        pred = net.predict(data.x_test.astype(bool))
        seconds = time.perf_counter() - start
        with torch.no_grad():
            torch_pred = model(torch.from_numpy(data.x_test).float()).argmax(1).numpy()
        report.update(test_acc=float((pred == data.y_test).mean()), equals_torch=bool(np.array_equal(pred, torch_pred)),
                      samples_per_s=round(len(pred) / max(seconds, 1e-9)))
    typer.echo(json.dumps(report))


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, file_okay=False, help="Run folder or checkpoint folder."),
    out: Path = typer.Option(..., dir_okay=False, callback=_folder_exists, help="Output file (.c or .v)."),
    format: str = options.choice("c", ("c", "verilog"), "c or verilog.", "--format", kind="export format"),
    module: str = typer.Option("logic_gate_net", callback=_module_name, help="Verilog module name."),
) -> None:
    """Write the discretised network as standalone C or as a synthesisable Verilog module."""
    from quintet.logic.compiled import export_c
    from quintet.logic.train import load_model
    from quintet.logic.verilog import export_verilog

    model = load_model(checkpoint)
    path = export_c(model, out) if format == "c" else export_verilog(model, out, module)
    typer.echo(f"wrote {path}")


@app.command("bench")
def bench_cmd(
    out: Optional[Path] = options.output_file(None, "JSON output (default benchmarks/results/logic.json).",
                                              (".json",)),
    repeats: int = typer.Option(5, min=1, max=1000, help="Timed runs per case (median reported)."),
    samples: int = typer.Option(100_000, min=1, max=10_000_000, help="Inference samples (MNIST test images, repeated)."),
    peer_opt_level: int = typer.Option(1, min=0, max=3, help="gcc -O level for difflogic's compiled net."),
) -> None:
    """Training-step and inference speed of quintet vs difflogic (same process, same inputs)."""
    from quintet.core.io import atomic_write_json
    from quintet.logic.bench import run_benchmark

    _threads(1)
    out = out or Path("benchmarks/results/logic.json")
    atomic_write_json(out, run_benchmark(repeats=repeats, samples=samples, peer_opt_level=peer_opt_level,
                                         log=typer.echo))
    typer.echo(f"wrote {out}")


# ------------------------------------------------------------------ reproduce / demo
def reproduce(out: Path, quick: bool, seed: int) -> dict:
    """Test accuracy after discretisation and gate counts on MONK-1/2/3, Breast Cancer, Adult and
    MNIST 20x20 (quick: a few thousand steps, about 8 minutes on one core)."""
    import torch

    from quintet.core.runs import Run
    from quintet.logic import experiments as ex

    torch.set_num_threads(1)
    cfgs = ex.configs(quick, seed)
    run = Run(out, {"quick": quick, "seed": seed, "runs": cfgs})
    rows = ex.run_all(quick, seed, out / "work", log=typer.echo)
    run.log_metrics({"results": rows, "paper": ex.PAPER, "tabular_paper_numbers": ex.TABULAR_NOT_SHOWN})
    fig1, fig2 = ex.figures(rows)
    run.save_figure(fig1, "logic_accuracy_vs_gates.png")
    run.save_figure(fig2, "logic_training_curves.png")
    run.finish(ex.results_markdown(rows, quick))
    shutil.rmtree(out / "work", ignore_errors=True)  # checkpoints are not results
    return {"results": rows}


def demo(run) -> str:
    """Train a small network on MONK-1-like data (the MONK-1 rule on all 432 attribute
    combinations, built in), compile it, export C and Verilog (~10 s)."""
    import itertools

    import numpy as np
    import torch

    from quintet.core.runs import markdown_table
    from quintet.logic.compiled import CompiledLogicNet, export_c
    from quintet.logic.data import MONK_VALUES, BinaryDataset
    from quintet.logic.train import TrainConfig, train
    from quintet.logic.verilog import export_verilog

    torch.set_num_threads(1)
    rows = np.array(list(itertools.product(*[range(1, n + 1) for n in MONK_VALUES])))
    labels = ((rows[:, 0] == rows[:, 1]) | (rows[:, 4] == 1)).astype(np.int64)  # MONK-1's rule
    offsets = np.concatenate([[0], np.cumsum(MONK_VALUES)[:-1]])
    x = np.zeros((len(rows), sum(MONK_VALUES)), dtype=np.uint8)
    for j, off in enumerate(offsets):
        x[np.arange(len(rows)), off + rows[:, j] - 1] = 1
    perm = np.random.default_rng(0).permutation(len(rows))
    train_idx, test_idx = perm[:124], perm[124:]
    data = BinaryDataset("monk1-rule", x[train_idx], labels[train_idx], x[test_idx], labels[test_idx], 2)
    res = train(TrainConfig(dataset="monk1", width=60, depth=4, steps=1000, eval_every=1000), data,
                log=lambda s: None)
    net = CompiledLogicNet.from_model(res["model"])
    pred = net.predict(data.x_test)
    c_path = export_c(res["model"], run.path / "logic_monk1.c")
    v_path = export_verilog(res["model"], run.path / "logic_monk1.v")
    table = markdown_table([{
        "gates": res["gates"], "steps": res["steps"], "train s": res["train_seconds"],
        "test acc (discrete) %": round(100 * res["test_acc_discrete"], 1),
        "test acc (relaxed) %": round(100 * res["test_acc_relaxed"], 1),
        "compiled backend": net.backend, "compiled = torch": bool(np.array_equal(
            pred, res["model"](torch.from_numpy(data.x_test).float()).argmax(1).numpy())),
    }])
    return ("## logic\n\nA 4 x 60-gate logic network learns the MONK-1 rule (head shape = body shape, "
            "or jacket colour red) from 124 of the 432 attribute combinations; the discretised "
            f"network is compiled to bit-parallel C and exported as `{c_path.name}` and `{v_path.name}`.\n\n"
            + table)
