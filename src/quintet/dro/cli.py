"""``quintet dro ...``: train robust classifiers; ``reproduce`` and ``demo`` for the top-level CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import typer

from quintet.core import options
from quintet.core.errors import QuintetError
from quintet.dro.wordpiece import BERT_VOCAB_SIZE, VOCAB_SIZE_RANGE

app = typer.Typer(help="Robust models with parametric likelihood ratios (ratio DRO), P-DRO with a generative "
                       "adversary, and baselines.",
                  no_args_is_help=True)

TASK_NAMES = ("biased-sst", "colored-mnist", "adult", "synthetic")
METHOD_NAMES = ("erm", "cvar", "chi2", "kl", "group-dro", "group-uniform", "topic-cvar", "ratio", "ratio-selfnorm",
                "pdro")
Task = Literal["biased-sst", "colored-mnist", "adult", "synthetic"]
Method = Literal["erm", "cvar", "chi2", "kl", "group-dro", "group-uniform", "topic-cvar", "ratio", "ratio-selfnorm",
                 "pdro"]
MAX_N_TRAIN = 10_000_000


def _n_train(help: str) -> Any:
    return typer.Option(None, min=10, max=MAX_N_TRAIN, help=help)


@app.command("train")
def train_cmd(
    task: Task = typer.Option("biased-sst", help=f"One of: {', '.join(TASK_NAMES)}."),
    method: Method = typer.Option("ratio", help=f"One of: {', '.join(METHOD_NAMES)}."),
    epochs: int = options.steps(5, "Training epochs (one checkpoint per epoch)."),
    seed: int = options.seed(0, "Random seed of the model (the task splits are fixed)."),
    batch_size: int = typer.Option(64, min=2, max=1_000_000,
                                   help="Mini-batch size B >= 2 (ratio weights are normalised per batch)."),
    recipe: Literal["ours", "authors"] = typer.Option(
        "ours", help="ours: Adam, lr / adv-lr, constant; authors: AdamW for both players at --lr, linear decay, "
                     "clipping at --clip-norm, summed ratio loss, equal-group sampling for Group DRO."),
    lr: float = options.positive(1e-3, "Learning rate of the model (authors' recipe: of both players).", maximum=10.0),
    adv_lr: float = options.positive(1e-4, "Learning rate of the ratio adversary (recipe ours).", maximum=10.0),
    clip_norm: float = options.positive(10.0, "Gradient-norm clip of each player (recipe authors).", maximum=1e6),
    tau: float = options.positive(0.01, "KL penalty temperature of the adversary (> 0); pdro: the temperature of "
                                        "its targets exp(loss / tau).", maximum=1e4),
    beta: float = typer.Option(1.0, min=0.0, max=1e4, callback=options.finite,
                               help="Self-normalisation penalty (ratio-selfnorm)."),
    alpha: float = options.positive(0.2, "CVaR level in (0, 1].", maximum=1.0),
    rho: float = options.positive(1.0, "chi2: size of the chi-square ball.", maximum=1e4),
    kappa: float = options.positive(1.0, "kl: size of the KL ball.", maximum=1e4),
    eta_q: float = options.positive(0.01, "Group DRO / Topic CVaR step size.", maximum=1e4),
    n_topics: int = typer.Option(10, min=2, max=1000, help="topic-cvar: number of LDA topics."),
    lm_embed_dim: int = typer.Option(64, min=4, max=4096, help="pdro: embedding size of the adversary's language model."),
    lm_hidden: int = typer.Option(64, min=4, max=4096, help="pdro: LSTM units of the adversary's language model."),
    lm_epochs: int = typer.Option(2, min=1, max=1000,
                                  help="pdro: maximum-likelihood epochs of the base language model p_0 (cached in "
                                       "OUT/checkpoints/base-lm)."),
    norm_window: int = typer.Option(5, min=1, max=10000,
                                    help="pdro: batches K averaged in the normaliser of the adversary's targets."),
    n_train: Optional[int] = _n_train("Sub-sample the training split to this many examples (synthetic: generate them)."),
    text_model: Literal["bilstm", "boe"] = typer.Option("bilstm", help="biased-sst model: bilstm or boe (bag of embeddings)."),
    model_size: Literal["small", "authors"] = typer.Option(
        "small", help="biased-sst sizes: small (64-d, 50 words) or authors (300-d, 300 units, learned initial "
                      "states, 128 words)."),
    sst_source: Literal["pdro", "glue"] = typer.Option(
        "pdro", help="biased-sst files: pdro (the authors' SST-2 copy, default) or glue."),
    tokens: Literal["words", "wordpiece"] = typer.Option(
        "words", help="biased-sst inputs: whitespace words, or uncased word pieces (learnt on the training split "
                      "unless --tokenizer is given)."),
    vocab_size: Optional[int] = typer.Option(
        None, min=VOCAB_SIZE_RANGE[0], max=VOCAB_SIZE_RANGE[1],
        help=f"--tokens wordpiece: at most this many learnt pieces (default {BERT_VOCAB_SIZE}, BERT's; fewer when "
             "the training sentences give fewer)."),
    tokenizer: Optional[Path] = options.input_folder(
        None, "--tokens wordpiece: a local Hugging Face tokenizer folder (e.g. a copy of bert-base-uncased) used "
              "instead of the learnt vocabulary."),
    out: Optional[Path] = options.output_folder(None, "Run folder (default runs/dro/<task>-<method>-seed<seed>)."),
    max_memory: Optional[float] = typer.Option(None, min=0.01, max=1e6, callback=options.finite,
                                               help="GiB the run may use (default: what the machine has free)."),
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in OUT/checkpoints if any."),
    threads: int = options.threads(1, "torch CPU threads (1 is fastest on a busy machine)."),
) -> None:
    """Train one model; checkpoints every epoch into OUT/checkpoints and resumes from them."""
    import shutil

    import torch

    from quintet.core.distributed import current
    from quintet.core.io import check_checkpoint, latest_checkpoint
    from quintet.core.runs import Run, markdown_table
    from quintet.dro.experiments import TrainConfig, train

    config = TrainConfig(task=task, method=method, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                         adv_lr=adv_lr, tau=tau, beta=beta, alpha=alpha, rho=rho, kappa=kappa, eta_q=eta_q,
                         n_topics=n_topics, n_train=n_train, text_model=text_model, recipe=recipe,
                         clip_norm=clip_norm, sst_source=sst_source, model_size=model_size, lm_embed_dim=lm_embed_dim,
                         lm_hidden=lm_hidden, lm_epochs=lm_epochs, norm_window=norm_window, tokens=tokens,
                         vocab_size=BERT_VOCAB_SIZE if vocab_size is None else vocab_size,
                         tokenizer_path=None if tokenizer is None else str(tokenizer)).validate()
    if vocab_size is not None and (tokens == "words" or tokenizer is not None):
        raise QuintetError(f"--vocab-size {vocab_size} applies to learnt word pieces only (--tokens wordpiece "
                           "without --tokenizer)")
    from quintet.dro.tasks import check_task_memory

    check_task_memory(task, n_train, max_memory)
    torch.set_num_threads(threads)
    out = out or Path("runs/dro") / f"{task}-{method}-seed{seed}"
    ckpt = out / "checkpoints"
    dist = current()  # under accelerate launch: only the main process touches the output folder
    if dist.is_main:
        if not resume and ckpt.exists():
            shutil.rmtree(ckpt)
        if latest_checkpoint(ckpt) is not None:  # a damaged or other-configuration checkpoint: before the data
            check_checkpoint(ckpt, expected_config=config.recorded(), ignore=("epochs",))
    dist.barrier()
    run = Run(out, config) if dist.is_main else None
    result = train(config, checkpoint_dir=ckpt, log=typer.echo, progress=True)
    if run is None:
        return
    rows = [{"selection": rule, "epoch": s["epoch"], "test acc": s["test_acc"], "test worst-group": s["test_worst"]}
            for rule, s in result["selection"].items()]
    run.log_metrics({"selection": result["selection"], "history": result["history"],
                     "seconds_per_step": result["seconds_per_step"]})
    table = markdown_table(rows)
    run.finish(f"# {task} / {method} / seed {seed}\n\n{table}")
    typer.echo(table)
    typer.echo(f"run: {out}")


@app.command("summarize")
def summarize_cmd(
    runs: list[Path] = typer.Argument(..., exists=True, file_okay=False, dir_okay=True,
                                      help="Finished `quintet dro train` run folders (same settings but method and seed)."),
    out: Path = options.output_folder(..., "Folder for results.json and results.md."),
) -> None:
    """One table over finished training runs: each selection rule's test accuracy, mean ± std over seeds."""
    from quintet.core.runs import Run
    from quintet.dro.summary import summarize_runs, summary_markdown

    summary = summarize_runs(runs)
    run = Run(out, {"runs": [str(r) for r in runs]})
    run.log_metrics(summary)
    text = summary_markdown(summary)
    run.finish(text)
    typer.echo(text)


@app.command("tasks")
def tasks_cmd(n_train: Optional[int] = _n_train("Sub-sample the training split.")) -> None:
    """Group sizes of every task's splits (needs the data root)."""
    from quintet.dro.tasks import load_task

    for name in TASK_NAMES:
        data = load_task(name, n_train=n_train)
        typer.echo(f"{name}: groups {data.group_names}")
        for split in ("train", "valid", "test"):
            typer.echo(f"  {split:5s} {getattr(data, split).group_counts(data.n_groups)}")


def reproduce(out: Path, quick: bool, seed: int) -> dict[str, Any]:
    """BiasedSST under the current and the authors' protocol over 3 seeds; see :mod:`quintet.dro.reproduce`."""
    from quintet.dro.reproduce import run_reproduce

    return run_reproduce(Path(out), quick=quick, seed=seed)


def demo(run: Any) -> str:
    """ERM vs ratio DRO on a synthetic spurious-feature task (built-in data, < 40 s)."""
    from quintet.dro.demo import run_demo

    return run_demo(run)


__all__ = ["app", "reproduce", "demo", "QuintetError"]
