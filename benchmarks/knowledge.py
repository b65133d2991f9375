"""Seconds per prompt of full integrated-gradients attribution (all layers, m = 20):
quintet.knowledge vs the `knowledge-neurons` package (0.0.2) on the same model and prompts.

Both are first configured on the same step grid and checked to give the same scores:
knowledge-neurons integrates over ``linspace(0, 1, m)`` with weight ``1/m``, which quintet takes
as ``alphas=torch.linspace(0, 1, m)``. Timings then use each tool's own default (quintet: the
paper's right Riemann sum; knowledge-neurons: its grid, batch_size = 20 steps per batch).

    .venv/bin/python benchmarks/knowledge.py [--model PATH] [--prompts 8]

``--model`` defaults to the quick fact LM that ``quintet reproduce knowledge --quick`` caches
(``~/.cache/quintet/knowledge/factlm-<hash>``, see ``quintet.knowledge.reproduce.factlm_dir``).

Writes benchmarks/results/knowledge.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _kn(model, tokenizer):
    from knowledge_neurons import KnowledgeNeurons

    return KnowledgeNeurons(model, tokenizer, model_type="bert", device="cpu")


def _bert_base_random(vocab_dir: Path):
    """A randomly initialised BERT-base-sized masked LM (12 layers, 768 hidden, 3072 neurons)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    tok = BertTokenizerFast(str(vocab_dir / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size)).eval()
    return model, tok


def measure(name, model, tok, pairs, steps, repeats=1):
    from quintet.knowledge import integrated_gradients

    kn = _kn(model, tok)
    # 1. same grid -> same scores
    worst = 0.0
    for prompt, answer in pairs[:2]:
        ours = integrated_gradients(model, tok, prompt, answer, alphas=torch.linspace(0, 1, steps)).scores
        theirs = kn.get_scores(prompt, tok.convert_ids_to_tokens(tok(answer, add_special_tokens=False)["input_ids"])[0],
                               batch_size=steps, steps=steps, pbar=False).detach()
        scale = float(theirs.abs().max())
        worst = max(worst, float((ours - theirs).abs().max()) / scale)
    assert worst < 1e-3, f"{name}: scores differ (max relative error {worst:.2e})"
    # 2. timings, each with its own defaults
    t_ours, t_kn = [], []
    for prompt, answer in pairs:
        target = tok.convert_ids_to_tokens(tok(answer, add_special_tokens=False)["input_ids"])[0]
        for _ in range(repeats):
            t = time.perf_counter()
            integrated_gradients(model, tok, prompt, answer, steps=steps)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            kn.get_scores(prompt, target, batch_size=steps, steps=steps, pbar=False)
            t_kn.append(time.perf_counter() - t)
    ours, theirs = statistics.median(t_ours), statistics.median(t_kn)
    return {"model": name, "layers": len(kn._get_transformer_layers()), "prompts": len(pairs), "steps": steps,
            "max_relative_score_difference_same_grid": worst,
            "quintet_s_per_prompt": ours, "knowledge_neurons_s_per_prompt": theirs, "speedup": theirs / ours}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="A fact LM folder (default: the cached quick one).")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-bert-base", action="store_true", help="Skip the BERT-base-sized random model.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/knowledge.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from quintet.core.io import atomic_write_json
    from quintet.knowledge.factlm import FactLMConfig, load_facts, load_model
    from quintet.knowledge.reproduce import factlm_dir

    if args.model is None:
        args.model = factlm_dir(FactLMConfig.quick())

    model, tok = load_model(args.model)
    bags = load_facts(args.model)
    pairs = [(b.prompts[0], b.object) for b in bags[:: max(1, len(bags) // args.prompts)]][: args.prompts]
    rows = [measure(f"fact LM ({args.model.name})", model, tok, pairs, args.steps)]
    print(json.dumps(rows[-1], indent=1))
    if not args.no_bert_base:
        base, base_tok = _bert_base_random(args.model)
        rows.append(measure("BERT-base size, random weights", base, base_tok, pairs[:3], args.steps))
        print(json.dumps(rows[-1], indent=1))
    import platform

    atomic_write_json(args.out, {"benchmark": "knowledge attribution, seconds per prompt", "threads": args.threads,
                                 "torch": torch.__version__, "platform": platform.platform(), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
