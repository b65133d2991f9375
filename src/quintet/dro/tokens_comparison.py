"""Whitespace words against word pieces on BiasedSST: the same runs of :mod:`quintet.dro.reproduce`
(both protocols, the bag-of-embeddings model at the ``--quick`` scale) on each kind of input.

The authors of ratio DRO (Michel et al., ICLR 2022) feed their models BERT word pieces; here the
pieces are learnt on the training split (:mod:`quintet.dro.wordpiece`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from quintet.dro.reproduce import PROTOCOLS, SCALES, _fmt, _run_protocol, _summarise
from quintet.dro.wordpiece import TOKENS

__all__ = ["compare_tokens"]

#: the unknown token's id of both learnt vocabularies (0 is padding)
UNKNOWN_ID = 1


def _input_notes(data) -> dict[str, Any]:
    """Vocabulary size, mean tokens per test sentence and the share of unknown test tokens."""
    x = data.test.x
    tokens = int((x != 0).sum())
    return {"vocab_size": data.notes["vocab_size"], "max_len": data.notes["max_len"],
            "test_tokens_per_sentence": tokens / len(data.test),
            "test_unknown_share": float((x == UNKNOWN_ID).sum()) / tokens,
            "tokenizer": data.notes.get("tokenizer", "whitespace words of the training split")}


def compare_tokens(out: Path, seed: int = 0, n_seeds: int = 3, protocols: tuple[str, ...] = tuple(PROTOCOLS),
                   methods: tuple[str, ...] = ("erm", "ratio"), n_train: int | None = None, epochs: int | None = None,
                   data_dir: str | Path | None = None, log=print) -> dict[str, Any]:
    """Train ``methods`` (ratio DRO always) under each of ``protocols`` for ``n_seeds`` seeds on
    words and on word pieces; write results.json, results.md and a worst-group figure into ``out``."""
    from quintet.core.errors import check_choice
    from quintet.core.runs import Run, markdown_table
    from quintet.dro.plots import worst_group_figure
    from quintet.dro.tasks import load_task

    for protocol in protocols:
        check_choice("protocol", protocol, PROTOCOLS)
    torch.set_num_threads(1)
    text_model, base_n, base_epochs = SCALES["quick"]
    scale = (text_model, n_train or base_n, epochs or base_epochs)
    seeds = [seed + i for i in range(n_seeds)]
    rules = {protocol: PROTOCOLS[protocol]["rule"] for protocol in protocols}
    run = Run(out, {"protocols": {p: PROTOCOLS[p] for p in protocols}, "seeds": seeds, "text_model": scale[0],
                    "n_train": scale[1], "epochs": scale[2], "methods": methods, "tokens": TOKENS})
    start = time.perf_counter()
    summary: dict[str, dict] = {tokens: {} for tokens in TOKENS}
    step_times: dict[str, dict] = {tokens: {} for tokens in TOKENS}
    inputs = {}
    for tokens in TOKENS:
        data = load_task("biased-sst", data_dir, n_train=scale[1], text_model=scale[0], tokens=tokens)
        inputs[tokens] = _input_notes(data)
        for protocol in protocols:
            result = _run_protocol(protocol, data, seeds, scale, Path(out) / ".checkpoints" / tokens, log, methods,
                                   tokens=tokens)
            summary[tokens][protocol] = _summarise(result["picks"])
            step_times[tokens][protocol] = result["seconds_per_step"]
    metrics = {"summary": summary, "inputs": inputs, "seconds_per_step": step_times,
               "minutes": round((time.perf_counter() - start) / 60, 1)}
    run.log_metrics(metrics)
    run.save_figure(worst_group_figure({f"{tokens}, {p} protocol": {m: v[rules[p]] for m, v in summary[tokens][p].items()}
                                        for p in protocols for tokens in TOKENS}), "worst_group.png")
    rows = []
    for method in summary[TOKENS[0]][protocols[0]]:
        for tokens in TOKENS:
            row = {"method": method, "inputs": tokens}
            for p in protocols:
                picked = summary[tokens][p][method][rules[p]]
                row[f"{p}: worst-group"], row[f"{p}: average"] = _fmt(picked["worst"]), _fmt(picked["acc"])
                row[f"{p}: s/step"] = round(step_times[tokens][p][method], 4)
            rows.append(row)
    input_rows = [{"inputs": tokens, "vocabulary": n["vocab_size"], "tokens per test sentence":
                   round(n["test_tokens_per_sentence"], 2), "unknown test tokens": f"{100 * n['test_unknown_share']:.2f} %",
                   "vocabulary source": n["tokenizer"]} for tokens, n in inputs.items()]
    described = "; ".join(f"{p} (recipe {PROTOCOLS[p]['recipe']}, selection {rules[p]})" for p in protocols)
    markdown = (
        f"### dro: whitespace words vs word pieces on BiasedSST (seeds {seeds})\n\n"
        f"Model: {scale[0]} (64-d, sequences up to {inputs['words']['max_len']} tokens), {scale[1]} training "
        f"sentences, {scale[2]} epochs, batch 64. Protocols: {described}, as in `quintet reproduce dro`. Test "
        "accuracy of the selected checkpoint, mean ± std over seeds; *worst-group* is the paper's robust accuracy; "
        "s/step is the median time of one training step (1 thread).\n\n"
        + markdown_table(rows) + "\n" + markdown_table(input_rows)
        + f"\nWall time of this invocation: {metrics['minutes']} minutes (finished runs kept in `.checkpoints/` "
        "are reused).\n\nThe paper does not report a words-vs-word-pieces comparison; no paper number is shown.\n\n"
        "![worst-group accuracy](worst_group.png)\n"
    )
    run.finish(markdown)
    return metrics
