"""``quintet knowledge ...``: train the fact LM, attribute a prompt; ``reproduce`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import typer

from quintet.core import options
from quintet.core.distributed import current

app = typer.Typer(help="Knowledge neurons (Dai et al., 2022): attribution, suppress/amplify, fact editing.",
                  no_args_is_help=True)


@app.command("train-factlm")
def train_factlm_cmd(
    out: Path = options.output_folder(Path("runs/knowledge/factlm"), "Folder for the model (save_pretrained format)."),
    quick: bool = typer.Option(False, "--quick", help="The small model and 10 facts per relation."),
    facts_per_relation: Optional[int] = typer.Option(None, min=1, max=100_000, help="Facts sampled per PARAREL relation."),
    epochs: Optional[int] = options.steps(None, "Maximum epochs (stops early at the target accuracy)."),
    seed: int = options.seed(0, "Random seed (facts, held-out templates, initialisation)."),
    threads: int = options.threads(1),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoints if present."),
) -> None:
    """Train a BERT masked LM on PARAREL prompts (some templates held out) and save it."""
    from dataclasses import replace

    import torch

    from quintet.knowledge.factlm import FactLMConfig, train_factlm

    torch.set_num_threads(threads)
    config = FactLMConfig.quick(seed) if quick else FactLMConfig(seed=seed)
    if facts_per_relation is not None:
        config = replace(config, facts_per_relation=facts_per_relation)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    metrics = train_factlm(out, config, log=typer.echo, resume=resume, progress=True)
    if not current().is_main:
        return
    typer.echo(f"saved to {out}: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))


@app.command("attribute")
def attribute_cmd(
    model: Path = options.input_folder(..., "A Hugging Face model folder (BERT, RoBERTa, DistilBERT, ELECTRA, GPT-2)."),
    prompt: str = typer.Option(..., help='Text with one [MASK], e.g. "Paris is the capital of [MASK] ."'),
    answer: str = typer.Option(..., help="The gold answer (one token of the vocabulary)."),
    tokenizer: Optional[Path] = options.input_folder(None, "Tokenizer folder when it is not beside the model."),
    steps: int = typer.Option(20, min=1, max=10_000, help="Steps m (Riemann) or nodes (gauss)."),
    rule: Literal["right", "left", "gauss"] = typer.Option("right", help="right (the paper's Riemann sum, Eq. 4), left, or gauss "
                             "(Gauss-Legendre; e.g. --rule gauss --steps 5)."),
    top: int = typer.Option(10, min=1, max=1_000_000, help="How many neurons to print."),
    threshold: float = options.fraction(0.2, "t: coarse neurons have attribution >= t * max."),
    heatmap: Path = options.output_file(Path("attribution.png"), "Where to write the layers x neurons heatmap (PNG)."),
) -> None:
    """Attribute the answer's probability to every FFN neuron; print the top ones, save a heatmap."""
    from quintet.core.io import atomic_write
    from quintet.knowledge.attribution import integrated_gradients
    from quintet.knowledge.factlm import load_model
    from quintet.knowledge.neurons import coarse_neurons
    from quintet.knowledge.plots import heatmap as heatmap_fig

    net, tok = load_model(model, tokenizer)
    attr = integrated_gradients(net, tok, prompt, answer, steps=steps, rule=rule)
    typer.echo(f"P({answer!r}) = {attr.prob:.4f}; {len(coarse_neurons(attr.scores, threshold))} neurons >= {threshold} x max")
    typer.echo("layer  neuron  attribution  activation")
    for layer, index, score in attr.top(top):
        typer.echo(f"{layer:5d}  {index:6d}  {score:11.4g}  {float(attr.activations[layer, index]):10.4g}")
    fig = heatmap_fig(attr.scores, f"{prompt} -> {answer}")
    with atomic_write(heatmap, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    typer.echo(f"heatmap: {heatmap}")


REPRODUCE_MODELS = ("factlm", "smollm2")


def reproduce(out: Path, quick: bool, seed: int, model: str = "factlm") -> dict[str, Any]:
    """Knowledge neurons -> suppress/amplify, update, erase on ``model``: ``factlm`` (the library's
    fact LM, into ``out``; :mod:`quintet.knowledge.reproduce`) or ``smollm2`` (the pretrained
    SmolLM2-135M, into ``out/smollm2``; :mod:`quintet.knowledge.reproduce_lm`)."""
    from quintet.core.errors import check_choice

    check_choice("knowledge model", model, REPRODUCE_MODELS)
    if model == "factlm":
        from quintet.knowledge.reproduce import run_reproduce

        return run_reproduce(out, quick=quick, seed=seed)
    from quintet.knowledge.reproduce_lm import run_reproduce_lm

    return run_reproduce_lm(Path(out) / model, model, quick=quick, seed=seed)


def demo(run) -> str:
    """Synthetic facts, a tiny BERT trained in seconds, attribution heatmap and suppression."""
    from quintet.knowledge.demo import run_demo

    return run_demo(run)
