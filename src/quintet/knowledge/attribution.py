"""Knowledge attribution by integrated gradients (Dai et al., 2022, §3.1, Eq. 3-4).

For the intermediate activation ``w^(l)`` of layer ``l`` at the target position and the
probability ``P(w^(l)) = p(y* | x, w^(l))`` of the gold token, Eq. 3 defines

    Attr(w_i^(l)) = w̄_i ∫_0^1 ∂P(α w̄^(l)) / ∂w_i dα,

and every rule here approximates that integral by a weighted sum over nodes ``α_k``:

    Attr(w_i^(l)) ≈ w̄_i Σ_k c_k ∂P(α_k w̄^(l)) / ∂w_i.

* ``right`` (the paper's Eq. 4): ``α_k = k/m`` for ``k = 1..m``, ``c_k = 1/m``; error O(1/m).
* ``left``: ``k = 0..m-1``, ``c_k = 1/m``; error O(1/m).
* ``gauss``: m-node Gauss–Legendre quadrature mapped to [0, 1] (weights sum to 1); exact for
  integrands that are polynomials of degree ≤ 2m − 1 in α, so for the smooth α ↦ ∂P/∂w its
  error falls much faster than 1/m and a few nodes match the 20-step right sum.

Completeness: Σ_i Attr_i → P(w̄) − P(0) as the quadrature converges.

Speed (exact, only fewer FLOPs): the prompt's prefix is computed once per layer with batch 1;
the batch grows to the ``m`` nodes *at the hooked activation of layer l* (the residual stream
broadcasts), so no node recomputes layers below ``l``; and the vocabulary projection reads only
the target position. Rows are independent, so the gradient of the summed probabilities with
respect to the scaled activations is exactly the per-node gradient the weighted sum needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quintet.core.errors import QuintetError
from quintet.knowledge.adapters import FFNAdapter, get_adapter
from quintet.knowledge.prompts import Batch, encode

RULES = ("right", "left", "gauss")


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


def gauss_legendre(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre nodes and weights on [0, 1], float64, each of shape ``(steps,)``.

    ``numpy.polynomial.legendre.leggauss`` on [-1, 1] mapped by ``α = (x + 1) / 2``, weights
    halved, so they sum to 1 and ``Σ_k w_k f(α_k) = ∫_0^1 f`` for every polynomial ``f`` of
    degree ≤ ``2 * steps - 1``.
    """
    import numpy as np

    if steps < 1:
        raise QuintetError(f"steps must be >= 1, got {steps}")
    x, w = np.polynomial.legendre.leggauss(steps)
    return torch.from_numpy((x + 1.0) / 2.0), torch.from_numpy(w / 2.0)


def quadrature(steps: int, rule: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``α_k`` and weights ``c_k`` (float64, shape ``(steps,)``) approximating ∫_0^1 dα.

    ``right``: ``α_k = k/m``, k = 1..m (Eq. 4); ``left``: k = 0..m-1; both with ``c_k = 1/m``.
    ``gauss``: :func:`gauss_legendre` (same integral, Eq. 3, higher order).
    """
    if steps < 1:
        raise QuintetError(f"steps must be >= 1, got {steps}")
    if rule not in RULES:
        raise QuintetError(f"unknown integration rule {rule!r}; expected one of: {', '.join(RULES)}")
    if rule == "gauss":
        return gauss_legendre(steps)
    k = torch.arange(1, steps + 1) if rule == "right" else torch.arange(0, steps)
    return k.double() / steps, torch.full((steps,), 1.0 / steps, dtype=torch.float64)


def step_grid(steps: int, rule: str = "right") -> torch.Tensor:
    """The ``m`` scaling factors ``α_k`` of :func:`quadrature` (right: ``k/m``, k = 1..m;
    left: k = 0..m-1; gauss: the Gauss–Legendre nodes on [0, 1])."""
    return quadrature(steps, rule)[0]


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
                weights: torch.Tensor, with_baseline: bool) -> tuple[torch.Tensor, float]:
    """``w̄ Σ_k c_k ∂P(α_k w̄)/∂w`` for one layer: one forward + backward with the nodes as a batch."""
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
    c = weights.to(grad.dtype).to(grad.device)
    return real * (c[:, None] * grad[:m]).sum(0), p0


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
    weights: torch.Tensor | None = None,
) -> Attribution:
    """Integrated-gradients attribution of every intermediate neuron (§3.1, Eq. 3-4).

    Args:
        model: a supported ``transformers`` masked LM (or GPT-2-style causal LM), in eval mode.
        tokenizer: its tokenizer.
        prompt: text with exactly one ``[MASK]`` (causal LMs: none, or one at the end).
        answer: the gold object, one token of the vocabulary.
        steps: ``m``, the number of steps (Riemann) or nodes (Gauss).
        rule: ``"right"`` (the paper's Eq. 4, ``α_k = k/m``, k = 1..m), ``"left"``
            (k = 0..m-1), or ``"gauss"`` (m-node Gauss–Legendre on [0, 1]; approximates the
            same integral, Eq. 3, exactly for polynomials of degree ≤ 2m − 1).
        layers: layers to attribute (default: all).
        alphas: a custom grid of scaling factors (overrides ``steps``/``rule``).
        weights: with ``alphas``, the quadrature weight of each node (default ``1/len(alphas)``).
        with_baseline: also compute ``P(0)`` per layer (one extra row per layer) for the
            completeness check ``scores[l].sum() ≈ prob − baseline_probs[l]``.

    Returns:
        :class:`Attribution` with ``scores`` of shape ``(n_layers, n_neurons)``.
    """
    adapter = model if isinstance(model, FFNAdapter) else get_adapter(model)
    if alphas is None:
        if weights is not None:
            raise QuintetError("weights needs alphas: pass the nodes they weight, or use rule=")
        grid, coef = quadrature(steps, rule)
    else:
        grid = torch.as_tensor(alphas, dtype=torch.float64).flatten()
        if grid.numel() < 1:
            raise QuintetError("alphas is empty; expected at least one scaling factor")
        if weights is None:
            coef = torch.full_like(grid, 1.0 / grid.numel())
        else:
            coef = torch.as_tensor(weights, dtype=torch.float64).flatten()
            if coef.shape != grid.shape:
                raise QuintetError(f"weights has {coef.numel()} entries but alphas has {grid.numel()}; "
                                   "expected one weight per node")
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
        sc, p0[layer] = _layer_pass(adapter, batch, layer, real[layer], grid, coef, with_baseline)
        scores[layer] = sc.detach().cpu()
    return Attribution(scores, acts, prob, p0, layers)
