"""Evaluation measures of Vitruvion §4: bits per primitive / per sketch (NLL / ln 2) of held-out
sketches, and the paper's baselines — a uniform model and LZMA compression of the token stream.
"""

from __future__ import annotations

import lzma
import math

import torch

from quintet.sketch.models.grammar import PrimitiveGrammar


def count_primitives(seqs: list[list[int]], grammar: PrimitiveGrammar) -> int:
    return sum(len(grammar.decode(s)) for s in seqs)


@torch.no_grad()
def model_bits(model, seqs: list[list[int]], batch_size: int = 64, images: torch.Tensor | None = None,
               masked: bool = True, dist=None) -> dict[str, float]:
    """Bits (NLL / ln 2, every token after Start including Stop) of ``seqs`` under ``model``.

    ``images``: (N, 1, 128, 128) conditioning images for an image-conditioned model.
    ``masked=False`` scores with the softmax over the whole vocabulary instead of the grammar's
    permitted tokens (the paper's likelihood).
    ``dist`` (a :class:`quintet.core.distributed.Dist`): each process scores its contiguous share of
    ``seqs`` and the NLL sums and token counts are summed over processes, so every process returns
    the bits of all ``seqs``.
    Returns ``{"bits_per_sketch", "bits_per_primitive", "bits_per_token"}``.
    """
    from quintet.sketch.models.sample import on_model_device, primitive_batch

    model.eval()
    total, tokens = 0.0, 0
    lo, hi = (0, len(seqs)) if dist is None else dist.bounds(len(seqs))
    for i in range(lo, hi, batch_size):
        j = min(i + batch_size, hi)
        b = primitive_batch(model.grammar, seqs[i:j])
        if images is not None:
            b["image"] = images[i:j]
        b = on_model_device(b, model)
        nll = model.token_nll(b["val"], b["coord"], b["pos"], b.get("image"), masked=masked)
        total += float(nll.sum())
        tokens += int((b["val"][:, 1:] != 0).sum())
    if dist is not None and dist.world > 1:
        summed = dist.all_sum(torch.tensor([total, float(tokens)], dtype=torch.float64))
        total, tokens = float(summed[0]), int(summed[1])
    n_prims = count_primitives(seqs, model.grammar)
    bits_total = total / math.log(2)
    return {
        "bits_per_sketch": bits_total / len(seqs),
        "bits_per_primitive": bits_total / max(n_prims, 1),
        "bits_per_token": bits_total / max(tokens, 1),
    }


def uniform_bits(seqs: list[list[int]], grammar: PrimitiveGrammar, grammar_aware: bool = True) -> dict[str, float]:
    """Bits of ``seqs`` under a uniform model.

    ``grammar_aware=True`` spreads probability uniformly over the tokens the grammar permits at each
    step (types+Stop, bins, or the two flags) — the stronger uniform baseline; ``False`` over the
    whole value vocabulary.
    """
    total = 0.0
    for s in seqs:
        if not grammar_aware:
            total += (len(s) - 1) * math.log2(grammar.vocab_size)
            continue
        prims = grammar.decode(s)
        total += (len(prims) + 1) * math.log2(grammar.n_types + 1)  # each type choice and Stop
        total += sum(grammar.n_params[t] for t, _, _ in prims) * math.log2(grammar.num_bins) + len(prims)  # flags: 1 bit
    n_prims = count_primitives(seqs, grammar)
    return {"bits_per_sketch": total / len(seqs), "bits_per_primitive": total / max(n_prims, 1)}


def lzma_bits(seqs: list[list[int]], grammar: PrimitiveGrammar) -> dict[str, float]:
    """Bits of the held-out token stream compressed with LZMA (raw LZMA2, preset 9e, no container
    header), one byte per token, all sketches concatenated — divided per sketch and per primitive."""
    data = bytes(t for s in seqs for t in s)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    size = len(lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters))
    total = 8.0 * size
    n_prims = count_primitives(seqs, grammar)
    return {"bits_per_sketch": total / len(seqs), "bits_per_primitive": total / max(n_prims, 1)}


def match_primitives(pred: list[tuple[int, list[int], bool]], true: list[tuple[int, list[int], bool]], tol: int = 2) -> int:
    """Number of true primitives matched one-to-one (greedy) by a predicted primitive of the same
    type whose every coordinate bin is within ``tol`` bins."""
    used = [False] * len(pred)
    hits = 0
    for t, bins, _ in true:
        for j, (tp, pb, _) in enumerate(pred):
            if not used[j] and tp == t and all(abs(a - b) <= tol for a, b in zip(pb, bins)):
                used[j] = True
                hits += 1
                break
    return hits


@torch.no_grad()
def constraint_accuracy(model, grammar: PrimitiveGrammar, pvals: list[list[int]], cvals: list[list[int]], *,
                        noise_std: float = 0.0, generator: torch.Generator | None = None,
                        batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced accuracy of a constraint model (§4.2) over ``pvals``/``cvals``, the primitives
    perturbed with truncated-normal noise of ``noise_std`` (0: exact). Batches are built on the CPU
    (the noise follows the CPU ``generator``) and moved to the model's device.

    Returns ``{"accuracy", "pointer_accuracy", "tokens", "references"}``.
    """
    from quintet.sketch.models.sample import on_model_device
    from quintet.sketch.models.train import constraint_batch

    correct = total = ref_correct = ref_total = 0
    for i in range(0, len(pvals), batch_size):
        b = constraint_batch(grammar, pvals[i : i + batch_size], cvals[i : i + batch_size], noise_std=noise_std,
                             generator=generator)
        a = model.accuracy(on_model_device(b, model))
        correct, total, ref_correct, ref_total = correct + a[0], total + a[1], ref_correct + a[2], ref_total + a[3]
    return {"accuracy": correct / max(total, 1), "pointer_accuracy": ref_correct / max(ref_total, 1),
            "tokens": total, "references": ref_total}
