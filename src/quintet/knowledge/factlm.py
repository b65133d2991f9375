"""A small BERT masked LM trained on PARAREL facts — the library's stand-in for a pretrained LM.

No pretrained English LM can be downloaded here, so :func:`train_factlm` trains one: a WordPiece
tokenizer (``tokenizers``) on PARAREL text, then a ``BertForMaskedLM`` (``transformers``) that
predicts the object at ``[MASK]`` for every (fact, training template) prompt. Some templates per
relation are held out to measure paraphrase generalisation. The result is saved with
``save_pretrained`` (config.json + model.safetensors + tokenizer files) plus ``facts.json``, and
loads back with :func:`load_model` like any Hugging Face checkpoint. Training checkpoints every
epoch into ``<out>/checkpoints`` and resumes from the latest one.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from quintet.core.errors import QuintetError
from quintet.core.io import atomic_write_json, latest_checkpoint, load_checkpoint, save_checkpoint
from quintet.knowledge.pararel import FactBag, pararel_bags, relation_templates
from quintet.knowledge.prompts import encode


@dataclass(frozen=True)
class FactLMConfig:
    """Everything that defines a fact LM run (stored in results and checkpoints)."""

    facts_per_relation: int = 40
    heldout_fraction: float = 0.25
    vocab_size: int = 6000
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    epochs: int = 120
    batch_size: int = 128
    lr: float = 2e-3
    target_accuracy: float = 0.98
    label_smoothing: float = 0.1
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> "FactLMConfig":
        return cls(facts_per_relation=10, vocab_size=4000, hidden_size=64, intermediate_size=256,
                   epochs=80, batch_size=64, lr=3e-3, seed=seed)


def _wordpiece(bags_text: list[str], vocab_size: int, directory: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(bags_text, trainer=trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    directory.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (directory / "vocab.txt").write_text("\n".join(w for w, _ in vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True)


def _corpus(data_dir) -> list[str]:
    from quintet.datasets import load_trex_facts

    lines = []
    for relation, patterns in relation_templates(data_dir=data_dir).items():
        lines += [p.replace("[X]", "").replace("[Y]", "") for p in patterns]
        for fact in load_trex_facts(relation, data_dir):
            lines.append(f"{fact.subject} {fact.object}")
    return lines


def _accuracy(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 256) -> float:
    from quintet.knowledge.editing import answer_probs

    if not pairs:
        return float("nan")
    model.eval()
    scores = answer_probs(model, tokenizer, [p for p, _ in pairs], [a for _, a in pairs], batch_size=batch_size)
    return float(scores.correct.float().mean())


def train_factlm(
    out: str | os.PathLike,
    config: FactLMConfig = FactLMConfig(),
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    resume: bool = True,
) -> dict:
    """Train (or resume) a fact LM into ``out``; returns its metrics (accuracies, time)."""
    from transformers import BertConfig, BertForMaskedLM

    from quintet.core.device import make_accelerator
    from quintet.core.seed import seed_everything

    out = Path(out)
    seed_everything(config.seed)
    start = time.perf_counter()
    tokenizer = _wordpiece(_corpus(data_dir), config.vocab_size, out / "tokenizer-build")
    bags = pararel_bags(tokenizer, config.facts_per_relation, config.heldout_fraction, config.seed, data_dir=data_dir)
    train_pairs = [(p, b.object) for b in bags for p in b.prompts]
    held_pairs = [(p, b.object) for b in bags for p in b.heldout]
    log(f"[factlm] {len(bags)} facts, {len(train_pairs)} training prompts, {len(held_pairs)} held-out prompts, "
        f"vocab {tokenizer.vocab_size}")
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = BertForMaskedLM(bert_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    ckpt_dir = out / "checkpoints"
    if not resume and ckpt_dir.exists():
        import shutil

        shutil.rmtree(ckpt_dir)
    first_epoch, history = 0, []
    if resume and latest_checkpoint(ckpt_dir) is not None:
        state = load_checkpoint(latest_checkpoint(ckpt_dir), model, optimizer)
        first_epoch, history = state["step"], state["extra"].get("history", [])
        log(f"[factlm] resumed from epoch {first_epoch}")
    batch = encode(tokenizer, [p for p, _ in train_pairs], [a for _, a in train_pairs], causal=False)
    accelerator = make_accelerator(cpu=not torch.cuda.is_available())
    model, optimizer = accelerator.prepare(model, optimizer)
    steps_per_epoch = math.ceil(len(batch) / config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (2 * steps_per_epoch)) * max(0.05, 1 - s / total))
    for _ in range(first_epoch * steps_per_epoch):
        schedule.step()
    gen = torch.Generator().manual_seed(config.seed)
    train_acc = 0.0
    for epoch in range(first_epoch, config.epochs):
        model.train()
        order = torch.randperm(len(batch), generator=gen)
        correct = 0
        for s in range(0, len(batch), config.batch_size):
            idx = order[s : s + config.batch_size]
            width = int(batch.inputs["attention_mask"][idx].sum(1).max())
            ids = batch.inputs["input_ids"][idx, :width].to(accelerator.device)
            att = batch.inputs["attention_mask"][idx, :width].to(accelerator.device)
            pos = batch.positions[idx].to(accelerator.device)
            gold = batch.targets[idx].to(accelerator.device)
            # the MLM head only at the [MASK] position: the head over all positions dominates the cost
            inner = accelerator.unwrap_model(model)
            hidden = inner.bert(input_ids=ids, attention_mask=att).last_hidden_state
            logits = inner.cls(hidden[torch.arange(len(idx), device=hidden.device), pos])
            loss = torch.nn.functional.cross_entropy(logits, gold, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            correct += int((logits.detach().argmax(-1) == gold).sum())
        train_acc = correct / len(batch)
        history.append({"epoch": epoch + 1, "train_acc_running": round(train_acc, 4)})
        save_checkpoint(ckpt_dir, accelerator.unwrap_model(model), step=epoch + 1, config=asdict(config),
                        optimizer=optimizer, extra={"history": history})
        if (epoch + 1) % 10 == 0:
            log(f"[factlm] epoch {epoch + 1}: running train accuracy {train_acc:.3f}")
        if train_acc >= config.target_accuracy:
            break
    model = accelerator.unwrap_model(model).eval()
    metrics = {
        "facts": len(bags),
        "train_prompts": len(train_pairs),
        "heldout_prompts": len(held_pairs),
        "epochs_run": len(history),
        "train_accuracy": _accuracy(model, tokenizer, train_pairs),
        "heldout_accuracy": _accuracy(model, tokenizer, held_pairs),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "facts.json", {
        "config": asdict(config), "metrics": metrics,
        "facts": [asdict(b) for b in bags],
    })
    log(f"[factlm] train accuracy {metrics['train_accuracy']:.3f}, held-out templates {metrics['heldout_accuracy']:.3f}")
    return metrics


def load_model(path: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None):
    """``(model, tokenizer)`` from a Hugging Face folder (masked LM, else causal LM), in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise QuintetError(f"model path {str(path)!r} does not exist or has no config.json; "
                           "expected a folder written by save_pretrained (e.g. by `quintet knowledge train-factlm`)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(path)
    from quintet.knowledge.adapters import CAUSAL_TYPES, SUPPORTED

    if config.model_type not in SUPPORTED:
        raise QuintetError(f"unsupported architecture {config.model_type!r} in {path}; "
                           f"supported model types: {', '.join(SUPPORTED)}")
    cls = AutoModelForCausalLM if config.model_type in CAUSAL_TYPES else AutoModelForMaskedLM
    model = cls.from_pretrained(path).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path)
    except (OSError, ValueError) as exc:
        raise QuintetError(f"no tokenizer found in {tokenizer_path or path} ({exc}); pass the tokenizer folder") from exc
    return model, tokenizer


def load_facts(path: str | os.PathLike) -> list[FactBag]:
    """The fact bags a fact LM was trained on (``facts.json`` beside its weights)."""
    file = Path(path) / "facts.json"
    if not file.is_file():
        raise QuintetError(f"{file} not found; is {path} a fact LM written by `quintet knowledge train-factlm`?")
    records = json.loads(file.read_text(encoding="utf-8"))["facts"]
    return [FactBag(r["relation"], r["subject"], r["object"], tuple(r["prompts"]), tuple(r["heldout"])) for r in records]
