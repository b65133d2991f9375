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

Speed (exact, only fewer FLOPs and calls): all layers in ONE forward and ONE backward, a
"staircase" batch. Row 0 is the clean prompt; entering block ``l``, the ``m`` node rows of layer
``l`` join the batch as copies of row 0 (so no node recomputes the layers below ``l``), and at
layer ``l``'s activation they get ``α_k w̄^(l)`` at the target position. Block ``j`` thus carries
``1 + m·(layers ≤ j)`` rows, the vocabulary projection reads only the target position, and rows
are independent, so the gradient of the summed probabilities with respect to all the scaled
activations is exactly the per-node gradient the weighted sum needs. ``max_rows`` splits the
layers into several such passes when the top batch would grow too large. In a causal LM the
target is the last token and nothing before it depends on its activations, so the prompt's other
tokens run once into a key/value cache and the staircase rows carry the last token alone.
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

    def completeness_gap(self) -> torch.Tensor:
        """Per layer ``Σ_i Attr_i − (P(w̄) − P(0))`` (float64, ``(n_layers,)``): zero for the exact
        integral (Eq. 3), so it measures the quadrature error; NaN where ``P(0)`` was not computed
        (``with_baseline=False``) or the layer was not attributed."""
        return self.scores.double().sum(1) - (self.prob - self.baseline_probs)

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


def _gold_probs(adapter: FFNAdapter, inputs: dict, pos: int, target: int, head, **kwargs) -> torch.Tensor:
    logits = adapter.model(**inputs, **kwargs).logits
    at = logits[:, 0] if head is not None else logits[:, pos]
    return at.to(torch.promote_types(at.dtype, torch.float32)).softmax(-1)[:, target]


def _prefix_cache(adapter: FFNAdapter, batch: Batch, rows_per_block: list[int]):
    """For a causal LM: ``(inputs, kwargs)`` that run only the last token over a key/value cache of
    the prompt's other tokens, each block's cache already widened to the rows that block will see.

    Scaling the activation at the last position cannot change earlier positions (causal
    attention), so every staircase row shares row 0's keys and values there: the rows need not
    recompute them. ``None`` when the model takes no ``DynamicCache`` with per-layer ``keys`` and
    ``values`` (then the full prompt runs in every row), or when the prompt is one token."""
    import inspect

    from transformers import DynamicCache

    ids, mask = batch.inputs["input_ids"], batch.inputs.get("attention_mask")
    if not adapter.causal or ids.shape[1] < 2:
        return None
    name = next((n for n in ("cache", "past_key_values") if n in inspect.signature(adapter.model.forward).parameters), None)
    if name is None:
        return None
    cache = DynamicCache(config=adapter.model.config)
    with torch.no_grad():
        adapter.model(input_ids=ids[:, :-1], attention_mask=None if mask is None else mask[:, :-1],
                      use_cache=True, **{name: cache})
    layers = getattr(cache, "layers", None)
    if layers is None or len(layers) != len(rows_per_block) or getattr(layers[0], "keys", None) is None:
        return None
    for layer, rows in zip(layers, rows_per_block):
        layer.keys = layer.keys.expand(rows, *layer.keys.shape[1:])
        layer.values = layer.values.expand(rows, *layer.values.shape[1:])
    inputs = {"input_ids": ids[:, -1:]} | ({} if mask is None else {"attention_mask": mask})
    return inputs, {name: cache, "use_cache": True}


def layer_groups(layers: list[int], rows_per_layer: int, max_rows: int | None) -> list[list[int]]:
    """Split sorted ``layers`` into consecutive groups, one staircase pass each, so that no block
    sees more than ``max_rows`` rows (1 clean row + ``rows_per_layer`` per layer of the group;
    at least one layer per group). ``None``: one group."""
    if max_rows is None:
        return [layers]
    if max_rows < 1:
        raise QuintetError(f"max_rows must be >= 1 (or None for no limit), got {max_rows}")
    size = max(1, (max_rows - 1) // rows_per_layer)
    return [layers[i : i + size] for i in range(0, len(layers), size)]


@dataclass
class _Staircase:
    """One staircase pass over ``group``: per layer its IG sum and ``P(0)``, plus the clean row's
    ``P(w̄)`` and activations of every layer at the target position."""

    sums: dict[int, torch.Tensor]
    baseline: dict[int, float]
    prob: float
    real: list[torch.Tensor]


def _staircase(adapter: FFNAdapter, batch: Batch, group: list[int], alphas: torch.Tensor, weights: torch.Tensor,
               with_baseline: bool) -> _Staircase:
    """``w̄ Σ_k c_k ∂P(α_k w̄)/∂w`` for every layer of ``group`` in one forward and one backward.

    Row 0 is the clean prompt. Entering block ``l`` of the group, ``k`` = m (+1 baseline) copies
    of row 0's hidden state join the batch; at layer ``l``'s activation those rows get
    ``α_k w̄^(l)`` (and 0) at the target position, while rows of earlier layers pass unchanged.
    Rows are independent, so one gradient of the summed probabilities gives each row its own.
    """
    m = alphas.numel()
    k = m + int(with_baseline)
    first = {layer: 1 + j * k for j, layer in enumerate(group)}
    rows_per_block = [1 + k * sum(g <= block for g in group) for block in range(adapter.n_layers)]
    cached = _prefix_cache(adapter, batch, rows_per_block)
    if cached is not None:  # only the last token runs; the target is its only position
        inputs, kwargs, pos = *cached, 0
    else:
        inputs, pos = batch.inputs, int(batch.positions[0])
        kwargs = {"use_cache": False} if adapter.causal else {}
    real: list[torch.Tensor | None] = [None] * adapter.n_layers
    leaves: dict[int, torch.Tensor] = {}

    def enter(hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([hidden, hidden[:1].expand(k, *hidden.shape[1:])])

    def scale(layer: int):
        def fn(out: torch.Tensor) -> torch.Tensor | None:
            real[layer] = w = out[0, pos].detach()
            if layer not in first:
                return None
            grid = alphas.to(w.dtype).to(w.device)
            grid = torch.cat([grid, grid.new_zeros(1)]) if with_baseline else grid
            leaves[layer] = leaf = (grid[:, None] * w[None, :]).requires_grad_(True)
            rows = torch.arange(first[layer], first[layer] + k, device=out.device)
            return out.index_put((rows, torch.full_like(rows, pos)), leaf)

        return fn

    handles = [adapter.hook_block_input(layer, enter) for layer in group]
    handles += [adapter.hook_activations(layer, scale(layer)) for layer in range(adapter.n_layers)]
    head = adapter.hook_head(pos)
    try:
        with torch.enable_grad():
            probs = _gold_probs(adapter, inputs, pos, int(batch.targets[0]), head, **kwargs)
            steps = torch.cat([torch.arange(first[layer], first[layer] + m) for layer in group])
            grads = torch.autograd.grad(probs[steps.to(probs.device)].sum(), [leaves[layer] for layer in group])
    finally:
        for h in handles + [head]:
            if h is not None:
                h.remove()
    probs = probs.detach()
    c = weights.to(grads[0].dtype).to(grads[0].device)
    sums = {layer: real[layer] * (c[:, None] * g[:m]).sum(0) for layer, g in zip(group, grads)}
    baseline = {layer: float(probs[first[layer] + m]) for layer in group} if with_baseline else {}
    return _Staircase(sums, baseline, float(probs[0]), real)


def _nodes(steps: int, rule: str, alphas, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """The nodes ``α_k`` and weights ``c_k`` (float64) from a rule or a custom grid."""
    if alphas is None:
        if weights is not None:
            raise QuintetError("weights needs alphas: pass the nodes they weight, or use rule=")
        return quadrature(steps, rule)
    grid = torch.as_tensor(alphas, dtype=torch.float64).flatten()
    if grid.numel() < 1:
        raise QuintetError("alphas is empty; expected at least one scaling factor")
    if weights is None:
        return grid, torch.full_like(grid, 1.0 / grid.numel())
    coef = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if coef.shape != grid.shape:
        raise QuintetError(f"weights has {coef.numel()} entries but alphas has {grid.numel()}; "
                           "expected one weight per node")
    return grid, coef


def _checked_layers(adapter: FFNAdapter, layers: list[int] | None) -> list[int]:
    """``layers`` sorted and deduplicated (default: all), each checked to exist."""
    if layers is None:
        return list(range(adapter.n_layers))
    chosen = sorted({int(layer) for layer in layers})
    if not chosen:
        raise QuintetError("layers is empty; give at least one layer (or None for all)")
    for layer in chosen:
        if not 0 <= layer < adapter.n_layers:
            raise QuintetError(f"layer {layer} does not exist; the model has layers 0..{adapter.n_layers - 1}")
    return chosen


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
    max_rows: int | None = 256,
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
        max_rows: the most rows one staircase pass may carry (1 + m (+1) per layer; the top
            block sees them all, and activation memory grows with rows × layers). Layers are
            split into consecutive groups, one pass each, to stay within it; ``None``: one pass.
            The default keeps BERT-base (12 layers, m = 20, with baseline) in one pass.

    Returns:
        :class:`Attribution` with ``scores`` of shape ``(n_layers, n_neurons)``.
    """
    adapter = model if isinstance(model, FFNAdapter) else get_adapter(model)
    grid, coef = _nodes(steps, rule, alphas, weights)
    layers = _checked_layers(adapter, layers)
    device = next(adapter.model.parameters()).device
    batch = encode(tokenizer, [prompt], [answer], adapter.causal, device=device)
    dtype = torch.promote_types(next(adapter.model.parameters()).dtype, torch.float32)
    scores = torch.zeros(adapter.n_layers, adapter.n_neurons, dtype=dtype)
    p0 = torch.full((adapter.n_layers,), float("nan"), dtype=torch.float64)
    for group in layer_groups(layers, grid.numel() + int(with_baseline), max_rows):
        run = _staircase(adapter, batch, group, grid, coef, with_baseline)
        for layer in group:
            scores[layer] = run.sums[layer].detach().to(dtype).cpu()
            p0[layer] = run.baseline.get(layer, float("nan"))
    acts = torch.stack([a.to(dtype).cpu() for a in run.real])
    return Attribution(scores, acts, run.prob, p0, layers)
