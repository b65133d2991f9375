"""Turn cloze prompts and answers into model inputs, with clear errors for bad input.

A masked-LM prompt holds exactly one ``[MASK]`` (written ``[MASK]`` whatever the tokenizer's own
mask token is); the *target position* is that mask. For a causal LM (GPT-2) the answer is the
next token after the prompt: the prompt may end with ``[MASK]`` (it is dropped) or have no mask,
and the target position is the last token. Answers must be one token of the model's vocabulary
(the paper keeps single-token objects only, §3); a longer answer raises :class:`QuintetError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quintet.core.errors import QuintetError

MASK = "[MASK]"


@dataclass
class Batch:
    """Padded inputs: ``input_ids``/``attention_mask`` ``(batch, seq)``, ``positions`` ``(batch,)``
    (where the answer is read), ``targets`` ``(batch,)`` (the answer token ids)."""

    inputs: dict[str, torch.Tensor]
    positions: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _prompt_text(tokenizer, prompt: str, causal: bool) -> str:
    count = prompt.count(MASK)
    if causal:
        stripped = prompt.rstrip()
        if count == 1 and stripped.endswith(MASK):
            return stripped[: -len(MASK)].rstrip()
        if count == 0:
            return prompt.rstrip()
        raise QuintetError(
            f"prompt {prompt!r} has {count} [MASK] token(s); a causal LM predicts the next token, "
            "so give no [MASK] or one at the very end"
        )
    if count != 1:
        raise QuintetError(f"prompt {prompt!r} has {count} [MASK] tokens; expected exactly one")
    mask_token = getattr(tokenizer, "mask_token", None)
    if mask_token is None:
        raise QuintetError(f"tokenizer {type(tokenizer).__name__} has no mask token; is this a masked LM?")
    return prompt.replace(MASK, mask_token)


def answer_id(tokenizer, answer: str, causal: bool = False) -> int:
    """The single token id of ``answer`` (BPE vocabularies: the space-prefixed form first).

    ``causal``: only the space-prefixed form counts — the word that follows a prompt ending in a
    word is `` word``, so a single-token ``word`` without the space is not the answer."""
    if not answer or not answer.strip():
        raise QuintetError("the answer is empty; expected one word of the model's vocabulary")
    plain = tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]
    spaced = tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]
    forms = (spaced,) if causal else (spaced, plain) if spaced != plain else (plain,)
    for ids in forms:
        if len(ids) == 1:
            if ids[0] == getattr(tokenizer, "unk_token_id", None):
                raise QuintetError(f"answer {answer!r} is not in the vocabulary (it maps to the unknown token)")
            return int(ids[0])
    shown = spaced if causal else plain
    pieces = tokenizer.convert_ids_to_tokens(shown)
    raise QuintetError(
        f"answer {answer!r} is {len(shown)} tokens for this tokenizer ({' '.join(pieces)}); knowledge "
        "attribution needs a single-token answer (choose facts whose object is one token)"
    )


def encode(tokenizer, prompts: list[str], answers: list[str], causal: bool, device=None) -> Batch:
    """Tokenize ``prompts`` (right-padded) and find each target position and answer id."""
    if len(prompts) != len(answers):
        raise QuintetError(f"{len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        raise QuintetError("no prompts given")
    texts = [_prompt_text(tokenizer, p, causal) for p in prompts]
    targets = torch.tensor([answer_id(tokenizer, a, causal) for a in answers])
    rows = [tokenizer(t)["input_ids"] for t in texts]
    if causal:
        if any(len(r) == 0 for r in rows):
            raise QuintetError("a causal-LM prompt is empty; give at least one word before the answer")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    positions = []
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = 1
        if causal:
            positions.append(len(r) - 1)
        else:
            where = [i for i, t in enumerate(r) if t == tokenizer.mask_token_id]
            if len(where) != 1:
                raise QuintetError(f"prompt {prompts[b]!r} tokenizes to {len(where)} mask tokens; expected one")
            positions.append(where[0])
    inputs = {"input_ids": ids, "attention_mask": mask}
    if device is not None:
        inputs = {k: v.to(device) for k, v in inputs.items()}
        targets = targets.to(device)
    return Batch(inputs, torch.tensor(positions, device=device), targets)
