"""Effects of knowledge neurons (Dai et al., 2022, §4.2 and §5).

* :func:`answer_probs` scores prompts, optionally with chosen neurons' activations at the
  target position multiplied by ``factor`` — 0 suppresses them, 2 amplifies them (§4.2).
* :func:`edit_value_slots` is a context manager that edits FFN value slots (rows of ``V``) and
  restores them *exactly* on exit (the original rows are cloned before the first change).
* :func:`update_fact` (§5.1): ``v_i ← v_i − λ1·e(t) + λ2·e(t')`` for the fact's knowledge neurons,
  with ``e`` the word embeddings of the old object ``t`` and the new object ``t'``
  (``scale="embedding"``, the paper's equation). The authors' released script
  (``6_edit_knowledge_sampled.py``) first rescales each embedding to the norm of the value slot it
  is added to, ``λ·‖v_i‖/‖e‖·e`` (``scale="slot"``), which makes λ independent of the embedding
  scale of a model.
* :func:`erase_relation` (§5.2): ``v_i ← 0`` for a relation's most common knowledge neurons.
"""

from __future__ import annotations

import operator
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from quintet.core.errors import QuintetError
from quintet.knowledge.adapters import FFNAdapter, get_adapter
from quintet.knowledge.neurons import Neuron
from quintet.knowledge.prompts import encode


@dataclass
class Scores:
    """Per prompt: ``prob`` of the answer, ``logprob``, and the model's ``argmax`` token id."""

    prob: torch.Tensor
    logprob: torch.Tensor
    argmax: torch.Tensor
    targets: torch.Tensor

    @property
    def correct(self) -> torch.Tensor:
        return self.argmax == self.targets


def _adapter(model) -> FFNAdapter:
    return model if isinstance(model, FFNAdapter) else get_adapter(model)


def _check_neurons(adapter: FFNAdapter, neurons: Sequence[Neuron]) -> dict[int, torch.Tensor]:
    by_layer: dict[int, list[int]] = {}
    for layer, index in neurons:
        if not (0 <= layer < adapter.n_layers and 0 <= index < adapter.n_neurons):
            raise QuintetError(
                f"neuron ({layer}, {index}) is outside the model's {adapter.n_layers} layers x "
                f"{adapter.n_neurons} neurons"
            )
        by_layer.setdefault(int(layer), []).append(int(index))
    return {layer: torch.tensor(sorted(set(i))) for layer, i in by_layer.items()}


@torch.no_grad()
def answer_probs(
    model,
    tokenizer,
    prompts: Sequence[str],
    answers: Sequence[str],
    neurons: Sequence[Neuron] = (),
    factor: float = 1.0,
    batch_size: int = 64,
) -> Scores:
    """Score ``prompts`` with the activations of ``neurons`` at the target position × ``factor``.

    ``factor = 0`` suppresses, ``factor = 2`` amplifies (§4.2); ``neurons = ()`` is the plain model.
    Returns :class:`Scores` with tensors of shape ``(len(prompts),)``.
    """
    adapter = _adapter(model)
    by_layer = _check_neurons(adapter, neurons)
    device = next(adapter.model.parameters()).device
    probs, logps, argmax, targets = [], [], [], []
    for s in range(0, len(prompts), batch_size):
        batch = encode(tokenizer, list(prompts[s : s + batch_size]), list(answers[s : s + batch_size]),
                       adapter.causal, device=device)
        rows = torch.arange(len(batch), device=device)
        handles = []

        def make(idx: torch.Tensor, rows: torch.Tensor = rows, batch=batch):
            idx = idx.to(device)

            def fn(out: torch.Tensor) -> torch.Tensor:
                out = out.clone()
                r = rows[:, None].expand(-1, idx.numel())
                p = batch.positions[:, None].expand(-1, idx.numel())
                out[r, p, idx[None, :].expand(len(batch), -1)] *= factor
                return out

            return fn

        try:
            if factor != 1.0:
                for layer, idx in by_layer.items():
                    handles.append(adapter.hook_activations(layer, make(idx)))
            head = adapter.hook_head(batch.positions)
            handles.append(head)
            kwargs = {"use_cache": False} if adapter.causal else {}
            logits = adapter.model(**batch.inputs, **kwargs).logits
        finally:
            for h in handles:
                if h is not None:
                    h.remove()
        at = (logits[:, 0] if head is not None else logits[rows, batch.positions]).float().log_softmax(-1)
        lp = at[rows, batch.targets]
        logps.append(lp.cpu())
        probs.append(lp.exp().cpu())
        argmax.append(at.argmax(-1).cpu())
        targets.append(batch.targets.cpu())
    return Scores(torch.cat(probs), torch.cat(logps), torch.cat(argmax), torch.cat(targets))


def relative_changes(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``(after − before) / before`` per element (``before`` clamped away from 0)."""
    return (after - before) / before.clamp_min(1e-12)


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean of :func:`relative_changes` (the §4.2 metric), as a fraction."""
    return float(relative_changes(before, after).mean())


def perplexity(logprob: torch.Tensor) -> float:
    """``exp(−mean log p)`` of the gold answers."""
    return float(torch.exp(-logprob.mean()))


class SlotEditor:
    """Edits value slots of an :class:`FFNAdapter` and remembers the originals for restoring."""

    def __init__(self, adapter: FFNAdapter):
        self.adapter = adapter
        self._saved: dict[Neuron, torch.Tensor] = {}

    def _save(self, layer: int, index: int) -> torch.Tensor:
        _check_neurons(self.adapter, [(layer, index)])
        slots = self.adapter.value_slots(layer)
        if (layer, index) not in self._saved:
            self._saved[(layer, index)] = slots[index].detach().clone()
        return slots

    @torch.no_grad()
    def add(self, layer: int, index: int, delta: torch.Tensor) -> None:
        slots = self._save(layer, index)
        slots[index] += delta.to(slots.dtype).to(slots.device)

    @torch.no_grad()
    def zero(self, layer: int, index: int) -> None:
        self._save(layer, index)[index] = 0.0

    @torch.no_grad()
    def restore(self) -> None:
        for (layer, index), row in self._saved.items():
            self.adapter.value_slots(layer)[index] = row
        self._saved.clear()

    @property
    def edited(self) -> list[Neuron]:
        return sorted(self._saved)


@contextmanager
def edit_value_slots(model) -> Iterator[SlotEditor]:
    """``with edit_value_slots(model) as ed: ed.add(l, i, v); ed.zero(l, j)`` — undone on exit."""
    editor = SlotEditor(_adapter(model))
    try:
        yield editor
    finally:
        editor.restore()


UPDATE_SCALES = ("embedding", "slot")


def _token_id(name: str, token, vocab: int) -> int:
    """``token`` as a Python int in ``0..vocab-1`` (ints, NumPy and 0-d tensor integers), else
    :class:`QuintetError` naming ``name``."""
    try:
        value = operator.index(token) if not isinstance(token, bool) else None
    except TypeError:
        value = None
    if value is None or not 0 <= value < vocab:
        raise QuintetError(f"{name} {token!r} is not a token id; expected an integer in 0..{vocab - 1}")
    return value


@contextmanager
def update_fact(model, neurons: Sequence[Neuron], old_id: int, new_id: int,
                lambda1: float = 1.0, lambda2: float = 8.0, scale: str = "embedding") -> Iterator[SlotEditor]:
    """§5.1: ``v_i ← v_i − λ1 e(old) + λ2 e(new)`` for each knowledge neuron, undone on exit.

    ``scale="slot"`` rescales both embeddings to ``‖v_i‖`` first (the authors' released code).
    A neuron listed more than once is edited once; token ids outside the vocabulary raise
    :class:`QuintetError`.
    """
    from quintet.core.errors import check_choice

    check_choice("update scale", scale, UPDATE_SCALES)
    adapter = _adapter(model)
    emb = adapter.word_embeddings()
    if emb.shape[1] != adapter.value_slots(0).shape[1]:
        raise QuintetError(
            f"word embeddings have size {emb.shape[1]} but value slots {adapter.value_slots(0).shape[1]}; "
            "updating needs them equal (ELECTRA generators with embedding_size != hidden_size cannot be updated)"
        )
    old_id, new_id = (_token_id(name, token, emb.shape[0]) for name, token in (("old_id", old_id), ("new_id", new_id)))
    old, new = emb[old_id].detach(), emb[new_id].detach()
    if scale == "slot":
        old, new = old / old.norm().clamp_min(1e-12), new / new.norm().clamp_min(1e-12)
    with edit_value_slots(adapter) as editor:
        for layer, index in dict.fromkeys((int(n[0]), int(n[1])) for n in neurons):
            size = adapter.value_slots(layer)[index].detach().norm() if scale == "slot" else 1.0
            editor.add(layer, index, size * (-lambda1 * old + lambda2 * new))
        yield editor


@contextmanager
def erase_relation(model, neurons: Sequence[Neuron]) -> Iterator[SlotEditor]:
    """§5.2: zero the value slots of ``neurons`` (a relation's most common ones), undone on exit."""
    with edit_value_slots(model) as editor:
        for layer, index in neurons:
            editor.zero(layer, index)
        yield editor


def most_common(neurons_by_fact: Sequence[Sequence[Neuron]], k: int = 20) -> list[Neuron]:
    """The ``k`` neurons found for the most facts of a relation (ties: lower layer/index first)."""
    counts = Counter(n for fact in neurons_by_fact for n in set(map(tuple, fact)))
    return [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def exclusive(neurons: Sequence[Neuron], other_facts: Sequence[Sequence[Neuron]],
              max_share: float = 0.1) -> list[Neuron]:
    """Drop neurons found for more than ``max_share`` of the relation's *other* facts (§5.1 filter).

    ``other_facts``: the knowledge neurons of the relation's facts other than the edited one.
    Counting the edited fact itself would drop every neuron of a relation with fewer than
    ``1 / max_share`` facts (its own neurons are always "shared" by one fact).
    """
    if not other_facts:
        return [tuple(n) for n in neurons]
    counts = Counter(n for fact in other_facts for n in set(map(tuple, fact)))
    limit = max_share * len(other_facts)
    return [tuple(n) for n in neurons if counts.get(tuple(n), 0) <= limit]
