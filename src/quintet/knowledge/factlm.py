"""A small BERT masked LM trained on PARAREL facts — the library's stand-in for a pretrained LM.

No pretrained English LM can be downloaded here, so :func:`train_factlm` trains one: a WordPiece
tokenizer (``tokenizers``) on PARAREL text, then a ``BertForMaskedLM`` (``transformers``) that
predicts the object at ``[MASK]`` for every (fact, training template) prompt. Some templates per
relation are held out to measure paraphrase generalisation.

The recipe follows BERT's pre-training rather than plain cloze fitting, so that the model is a
less degenerate test bed for knowledge neurons (see docs/knowledge.md, "Why the fact LM is weaker than BERT-base"):

* masked-LM noise as in BERT: the object slot is ``[MASK]`` 80 % of the time, a random token
  10 %, the object itself 10 %; a further ``mlm_probability`` of the other tokens are chosen and
  corrupted the same way and predicted too. Without this, object tokens never occur as *inputs*,
  so their (tied) word embeddings never act as residual-stream directions and the paper's fact
  update (adding ``e(t')`` to value slots) has nothing to work with;
* dropout 0.1 (BERT's default) and no label smoothing;
* early stopping as soon as the eval-mode top-1 accuracy on the training prompts reaches
  ``target_accuracy`` (0.9), so gold probabilities are not pushed towards 1. The result is saved with
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

from quintet.core.distributed import Dist, current
from quintet.core.errors import QuintetError
from quintet.core.io import atomic_write_json, load_checkpoint, save_checkpoint
from quintet.core.progress import progress_bar
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
    epochs: int = 150
    batch_size: int = 128
    lr: float = 2e-3
    target_accuracy: float = 0.9
    label_smoothing: float = 0.0
    dropout: float = 0.1
    mlm_probability: float = 0.15
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> "FactLMConfig":
        return cls(facts_per_relation=10, vocab_size=4000, hidden_size=64, intermediate_size=512,
                   epochs=120, batch_size=64, lr=3e-3, seed=seed)


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


def _corrupt(ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, special: torch.Tensor,
             n_special: int, mask_id: int, vocab_size: int, mlm_probability: float,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's masked-LM corruption of filled prompts ``ids`` ``(batch, seq)``.

    The object at ``positions`` is always predicted; other non-special tokens with probability
    ``mlm_probability``. A predicted token becomes ``[MASK]`` (80 %), a random non-special token
    (10 %) or stays (10 %). Returns ``(corrupted ids, labels (-100 where not predicted), is_object)``.
    """
    rows = torch.arange(ids.shape[0])
    is_object = torch.zeros_like(ids, dtype=torch.bool)
    is_object[rows, positions] = True
    chosen = (torch.rand(ids.shape, generator=gen) < mlm_probability) & attention.bool()
    chosen &= ~torch.isin(ids, special)
    chosen |= is_object
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=gen)
    out = ids.clone()
    out[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    out[swap] = torch.randint(n_special, vocab_size, (int(swap.sum()),), generator=gen)
    return out, labels, is_object


def _accuracy(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 256, dist: Dist = Dist()) -> float:
    """Top-1 accuracy on ``pairs``; each process scores its share and the answers are gathered."""
    from quintet.knowledge.editing import answer_probs

    if not pairs:
        return float("nan")
    model.eval()
    lo, hi = dist.bounds(len(pairs))
    mine = pairs[lo:hi]
    correct = torch.zeros(0, dtype=torch.bool)
    if mine:
        correct = answer_probs(model, tokenizer, [p for p, _ in mine], [a for _, a in mine],
                               batch_size=batch_size).correct.cpu()
    return float(dist.gather(correct, len(pairs)).float().mean())


def _masked_lm_loss(model, ids: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor,
                    is_object: torch.Tensor, label_smoothing: float, batch_size: int, dist: Dist) -> torch.Tensor | None:
    """Cross-entropy at the object slots (a mean over the ``batch_size`` prompts) plus the one at the
    other predicted tokens (a mean over all of them in the batch), of this process's rows, scaled so
    that gradients averaged over processes are those of the whole batch; ``None`` without rows."""
    others = int(dist.all_sum(float(((labels >= 0) & ~is_object).sum())))
    if len(ids) == 0:  # the last, short batch of an epoch may leave a process without rows
        return None
    rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
    # the MLM head only at the predicted positions: the head over all positions dominates the cost
    hidden = model.bert(input_ids=ids.to(dist.device), attention_mask=attention.to(dist.device)).last_hidden_state
    logits = model.cls(hidden[rows.to(hidden.device), cols.to(hidden.device)])
    gold = labels[rows, cols].to(logits.device)
    obj = is_object[rows, cols].to(logits.device)
    loss = torch.nn.functional.cross_entropy(logits[obj], gold[obj], label_smoothing=label_smoothing)
    loss = loss * dist.weight(batch_size)
    if others:
        part = torch.nn.functional.cross_entropy(logits[~obj], gold[~obj], label_smoothing=label_smoothing,
                                                 reduction="sum")
        loss = loss + part * (dist.world / others)
    return loss


def train_factlm(
    out: str | os.PathLike,
    config: FactLMConfig = FactLMConfig(),
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    resume: bool = True,
    progress: bool = False,
) -> dict:
    """Train (or resume) a fact LM into ``out``; returns its metrics (accuracies, time). ``progress``
    shows a bar (rate, loss, accuracy) on stderr.

    Under ``accelerate launch`` each process trains on its rows of every batch (gradients averaged,
    the loss normalised over the whole batch); the main process builds the vocabulary and writes
    every file. Dropout masks are drawn per process, so only a run without dropout repeats a
    one-process run exactly."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from quintet.core.seed import seed_everything

    out = Path(out)
    dist = current()
    dist.check_batch(config.batch_size)
    log, progress = dist.main_only(log), progress and dist.is_main
    seed_everything(config.seed)
    start = time.perf_counter()
    ckpt_dir = out / "checkpoints"
    if not resume and ckpt_dir.exists() and dist.is_main:
        import shutil

        shutil.rmtree(ckpt_dir)
    dist.barrier()
    vocab = out / "tokenizer-build" / "vocab.txt"
    resume_from = dist.latest_checkpoint(ckpt_dir) if resume else None
    # with a checkpoint: the vocabulary it was trained with (WordPiece breaks ties differently per run)
    if dist.is_main and (resume_from is None or not vocab.is_file()):
        _wordpiece(_corpus(data_dir), config.vocab_size, out / "tokenizer-build")
    dist.barrier()
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=True)
    bags = pararel_bags(tokenizer, config.facts_per_relation, config.heldout_fraction, config.seed, data_dir=data_dir)
    train_pairs = [(p, b.object) for b in bags for p in b.prompts]
    held_pairs = [(p, b.object) for b in bags for p in b.heldout]
    log(f"[factlm] {len(bags)} facts, {len(train_pairs)} training prompts, {len(held_pairs)} held-out prompts, "
        f"vocab {tokenizer.vocab_size}")
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=128, hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
    )
    model = BertForMaskedLM(bert_config).to(dist.device)
    dist.broadcast_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    first_epoch, history = 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, expected_config=asdict(config),
                                ignore=("epochs", "target_accuracy"))
        first_epoch, history = state["step"], state["extra"].get("history", [])
        log(f"[factlm] resumed from epoch {first_epoch}")
    batch = encode(tokenizer, [p for p, _ in train_pairs], [a for _, a in train_pairs], causal=False)
    steps_per_epoch = math.ceil(len(batch) / config.batch_size)
    total = steps_per_epoch * config.epochs
    # a resumed schedule starts at its step (the base rate is the run's own learning rate)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (2 * steps_per_epoch)) * max(0.05, 1 - s / total),
        last_epoch=first_epoch * steps_per_epoch - 1)
    filled = batch.inputs["input_ids"].clone()
    filled[torch.arange(len(batch)), batch.positions] = batch.targets
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    n_special = int(special.max()) + 1
    train_acc = 0.0
    bar = progress_bar(config.epochs * steps_per_epoch, "fact LM", first_epoch * steps_per_epoch, progress)
    finished = bool(history) and history[-1]["train_acc"] >= config.target_accuracy  # stopped early before
    for epoch in range(first_epoch, first_epoch if finished else config.epochs):
        # each epoch's masking comes from (seed, epoch) and its dropout from (seed, epoch, process):
        # a resumed run repeats an uninterrupted one
        torch.manual_seed(config.seed * 1_000_003 + epoch + 7919 * dist.rank)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        model.train()
        order = torch.randperm(len(batch), generator=gen)
        for s in range(0, len(batch), config.batch_size):
            idx = order[s : s + config.batch_size]
            width = int(batch.inputs["attention_mask"][idx].sum(1).max())
            # the whole batch is corrupted alike on every process, which then keeps its rows
            ids, labels, is_object = _corrupt(filled[idx, :width], batch.inputs["attention_mask"][idx, :width],
                                              batch.positions[idx], special, n_special, tokenizer.mask_token_id,
                                              tokenizer.vocab_size, config.mlm_probability, gen)
            ids, labels, is_object, att = dist.shard(ids, labels, is_object, batch.inputs["attention_mask"][idx, :width])
            loss = _masked_lm_loss(model, ids, att, labels, is_object, config.label_smoothing, len(idx), dist)
            optimizer.zero_grad(set_to_none=True)
            if loss is not None:
                loss.backward()
            dist.sync_gradients(model.parameters())
            optimizer.step()
            schedule.step()
            bar.update(1)
            shown = float(loss.detach()) if loss is not None else 0.0
            bar.set_postfix(epoch=epoch + 1, loss=f"{shown:.4f}", acc=f"{train_acc:.3f}", refresh=False)
        train_acc = _accuracy(model, tokenizer, train_pairs, dist=dist)
        history.append({"epoch": epoch + 1, "train_acc": round(train_acc, 4)})
        if dist.is_main:
            save_checkpoint(ckpt_dir, model, step=epoch + 1, config=asdict(config), optimizer=optimizer,
                            extra={"history": history})
        if (epoch + 1) % 5 == 0:
            log(f"[factlm] epoch {epoch + 1}: train top-1 accuracy {train_acc:.3f}")
        if train_acc >= config.target_accuracy:
            break
    bar.close()
    model = model.eval()
    metrics = {
        "facts": len(bags),
        "train_prompts": len(train_pairs),
        "heldout_prompts": len(held_pairs),
        "epochs_run": len(history),
        "train_accuracy": _accuracy(model, tokenizer, train_pairs, dist=dist),
        "heldout_accuracy": _accuracy(model, tokenizer, held_pairs, dist=dist),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    if dist.is_main:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        atomic_write_json(out / "facts.json", {
            "config": asdict(config), "metrics": metrics,
            "facts": [asdict(b) for b in bags],
        })
    dist.barrier()  # the saved model is complete before any process returns
    log(f"[factlm] train accuracy {metrics['train_accuracy']:.3f}, held-out templates {metrics['heldout_accuracy']:.3f}")
    if not metrics["train_accuracy"] >= config.target_accuracy:
        log(f"[factlm] WARNING: train top-1 accuracy {100 * metrics['train_accuracy']:.1f} % is below the "
            f"{100 * config.target_accuracy:.0f} % target after {len(history)} epochs: the model has not memorised "
            "its training prompts, so knowledge neurons found in it are unreliable; train longer (--epochs)")
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
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise QuintetError(f"{path / 'config.json'} is not a readable model configuration "
                           f"({_first_line(exc)}); the file is damaged") from exc
    from quintet.knowledge.adapters import CAUSAL_TYPES, SUPPORTED

    if config.model_type not in SUPPORTED:
        raise QuintetError(f"unsupported architecture {config.model_type!r} in {path}; "
                           f"supported model types: {', '.join(SUPPORTED)}")
    _check_safetensors(path)
    cls = AutoModelForCausalLM if config.model_type in CAUSAL_TYPES else AutoModelForMaskedLM
    try:
        model = cls.from_pretrained(path, use_safetensors=True).eval()
    except Exception as exc:  # safetensors and transformers raise their own error types
        raise QuintetError(f"the weights in {path} cannot be loaded ({_first_line(exc)}); "
                           "the model.safetensors file is damaged or of another model") from exc
    tok_path = Path(tokenizer_path) if tokenizer_path is not None else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
    except Exception as exc:  # OSError, ValueError, or the tokenizers library's own errors
        raise QuintetError(f"the tokenizer files in {tok_path} (tokenizer.json, vocab.txt, ...) cannot be read "
                           f"({_first_line(exc)}); pass a tokenizer folder with --tokenizer") from exc
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _check_safetensors(path: Path) -> None:
    """Refuse a folder whose weights are a pickle: loading one could run arbitrary code."""
    if (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
    if pickles:
        raise QuintetError(f"{path} holds its weights as a pickle ({pickles[0]}), which quintet does not load; "
                           "convert it to safetensors (save_pretrained(folder, safe_serialization=True) in a "
                           "trusted environment) and pass that folder")
    raise QuintetError(f"{path} holds no model.safetensors; expected a folder written by save_pretrained")


def load_facts(path: str | os.PathLike) -> list[FactBag]:
    """The fact bags a fact LM was trained on (``facts.json`` beside its weights)."""
    file = Path(path) / "facts.json"
    if not file.is_file():
        raise QuintetError(f"{file} not found; is {path} a fact LM written by `quintet knowledge train-factlm`?")
    records = json.loads(file.read_text(encoding="utf-8"))["facts"]
    return [FactBag(r["relation"], r["subject"], r["object"], tuple(r["prompts"]), tuple(r["heldout"])) for r in records]
