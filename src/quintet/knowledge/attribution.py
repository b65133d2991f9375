"""Knowledge attribution by integrated gradients (Dai et al., 2022, §3.1, Eq. 3-4).

For the intermediate activation ``w^(l)`` of layer ``l`` at the target position and the
probability ``P(w^(l)) = p(y* | x, w^(l))`` of the gold token,

    Attr(w_i^(l)) = w̄_i ∫_0^1 ∂P(α w̄^(l)) / ∂w_i dα
                  ≈ (w̄_i / m) Σ_{k=1}^m ∂P((k/m) w̄^(l)) / ∂w_i          (Eq. 4, right sum)

and the left sum uses ``k = 0 .. m-1``. Completeness: Σ_i Attr_i → P(w̄) − P(0) as m grows.

Speed (exact, only fewer FLOPs): the prompt's prefix is computed once per layer with batch 1;
the batch grows to the ``m`` steps *at the hooked activation of layer l* (the residual stream
broadcasts), so no step recomputes layers below ``l``; and the vocabulary projection reads only
the target position. Rows are independent, so the gradient of the summed probabilities with
respect to the scaled activations is exactly the per-step gradient Eq. 4 needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quintet.core.errors import QuintetError
from quintet.knowledge.adapters import FFNAdapter, get_adapter
from quintet.knowledge.prompts import Batch, encode

RULES = ("right", "left")


@dataclass
class Attribution:
    """Result of :func:`integrated_gradients` for one prompt.

    Attributes:
        scores: ``(n_layers, n_neurons)``; rows for layers not asked for are zero.
        activations: ``(n_layers, n_neurons)`` real activations ``w̄`` at the target position.
        prob: ``P(w̄)``, the gold probability of the unmodified model.
        baseline_probs: ``(n_layers,)`` ``P(0)`` per layer (NaN where not computed).
        layers: the layers attributed.
    """

    scores: torch.Tensor
    activations: torch.Tensor
    prob: float
    baseline_probs: torch.Tensor
    layers: list[int]

    def top(self, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` highest-scoring neurons as ``(layer, neuron, score)``."""
        flat = self.scores.flatten()
        k = min(k, flat.numel())
        values, index = flat.topk(k)
        n = self.scores.shape[1]
        return [(int(i) // n, int(i) % n, float(v)) for v, i in zip(values, index)]


def step_grid(steps: int, rule: str = "right") -> torch.Tensor:
    """The ``m`` scaling factors ``α_k``: ``k/m`` for k = 1..m (right) or 0..m-1 (left)."""
    if steps < 1:
        raise QuintetError(f"steps must be >= 1, got {steps}")
    if rule not in RULES:
        raise QuintetError(f"unknown Riemann rule {rule!r}; expected one of: {', '.join(RULES)}")
    k = torch.arange(1, steps + 1) if rule == "right" else torch.arange(0, steps)
    return k.double() / steps


def _gold_probs(adapter: FFNAdapter, batch: Batch, head) -> torch.Tensor:
    kwargs = {"use_cache": False} if adapter.causal else {}
    logits = adapter.model(**batch.inputs, **kwargs).logits
    at = logits[:, 0] if head is not None else logits[:, int(batch.positions[0])]
    return at.to(torch.promote_types(at.dtype, torch.float32)).softmax(-1)[:, int(batch.targets[0])]


def _real_pass(adapter: FFNAdapter, batch: Batch) -> tuple[float, list[torch.Tensor]]:
    """P(gold) of the unmodified model and every layer's activation at the target, batch 1."""
    pos = int(batch.positions[0])
    acts: list[torch.Tensor | None] = [None] * adapter.n_layers

    def keep(layer):
        def fn(out):
            acts[layer] = out[0, pos].detach()

        return fn

    handles = [adapter.hook_activations(layer, keep(layer)) for layer in range(adapter.n_layers)]
    head = adapter.hook_head(pos)
    try:
        with torch.no_grad():
            prob = float(_gold_probs(adapter, batch, head)[0])
    finally:
        for h in handles + [head]:
            if h is not None:
                h.remove()
    return prob, acts


def _layer_pass(adapter: FFNAdapter, batch: Batch, layer: int, real: torch.Tensor, alphas: torch.Tensor,
                with_baseline: bool) -> tuple[torch.Tensor, float]:
    """Eq. 4 for one layer: one forward + backward with the m steps as a batch."""
    pos = int(batch.positions[0])
    grid = alphas.to(real.dtype).to(real.device)
    if with_baseline:
        grid = torch.cat([grid, grid.new_zeros(1)])
    k = grid.numel()
    leaf = (grid[:, None] * real[None, :]).requires_grad_(True)

    def grow(out: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(k, device=out.device)
        return out.expand(k, *out.shape[1:]).index_put((rows, torch.full_like(rows, pos)), leaf)

    handles = [adapter.hook_activations(layer, grow), adapter.hook_head(pos)]
    try:
        with torch.enable_grad():
            probs = _gold_probs(adapter, batch, handles[1])
            m = alphas.numel()
            (grad,) = torch.autograd.grad(probs[:m].sum(), leaf)
    finally:
        for h in handles:
            if h is not None:
                h.remove()
    p0 = float(probs[m].detach()) if with_baseline else float("nan")
    return real * grad[:m].sum(0) / m, p0


def integrated_gradients(
    model,
    tokenizer,
    prompt: str,
    answer: str,
    steps: int = 20,
    rule: str = "right",
    layers: list[int] | None = None,
    alphas: torch.Tensor | None = None,
    with_baseline: bool = False,
) -> Attribution:
    """Integrated-gradients attribution of every intermediate neuron (§3.1, Eq. 4).

    Args:
        model: a supported ``transformers`` masked LM (or GPT-2-style causal LM), in eval mode.
        tokenizer: its tokenizer.
        prompt: text with exactly one ``[MASK]`` (causal LMs: none, or one at the end).
        answer: the gold object, one token of the vocabulary.
        steps: ``m``, the number of Riemann steps.
        rule: ``"right"`` (the paper, ``k = 1..m``) or ``"left"`` (``k = 0..m-1``).
        layers: layers to attribute (default: all).
        alphas: a custom grid of scaling factors (overrides ``steps``/``rule``); the sum is
            weighted ``1/len(alphas)``.
        with_baseline: also compute ``P(0)`` per layer (one extra row per layer) for the
            completeness check ``scores[l].sum() ≈ prob − baseline_probs[l]``.

    Returns:
        :class:`Attribution` with ``scores`` of shape ``(n_layers, n_neurons)``.
    """
    adapter = model if isinstance(model, FFNAdapter) else get_adapter(model)
    grid = step_grid(steps, rule) if alphas is None else torch.as_tensor(alphas, dtype=torch.float64).flatten()
    if grid.numel() < 1:
        raise QuintetError("alphas is empty; expected at least one scaling factor")
    all_layers = list(range(adapter.n_layers))
    layers = all_layers if layers is None else [int(layer) for layer in layers]
    for layer in layers:
        if layer not in all_layers:
            raise QuintetError(f"layer {layer} does not exist; the model has layers 0..{adapter.n_layers - 1}")
    device = next(adapter.model.parameters()).device
    batch = encode(tokenizer, [prompt], [answer], adapter.causal, device=device)
    dtype = torch.promote_types(next(adapter.model.parameters()).dtype, torch.float32)
    prob, real = _real_pass(adapter, batch)
    n = adapter.n_neurons
    scores = torch.zeros(adapter.n_layers, n, dtype=dtype)
    acts = torch.stack([a.to(dtype).cpu() for a in real])
    p0 = torch.full((adapter.n_layers,), float("nan"), dtype=torch.float64)
    for layer in layers:
        sc, p0[layer] = _layer_pass(adapter, batch, layer, real[layer], grid, with_baseline)
        scores[layer] = sc.detach().cpu()
    return Attribution(scores, acts, prob, p0, layers)
