"""Knowledge attribution by integrated gradients (Dai et al., 2022, §3.1, Eq. 3-4).

For the intermediate activation ``w^(l)`` of layer ``l`` at the target position and the
probability ``P(w^(l)) = p(y* | x, w^(l))`` of the gold token,

    Attr(w_i^(l)) = w̄_i ∫_0^1 ∂P(α w̄^(l)) / ∂w_i dα
                  ≈ (w̄_i / m) Σ_{k=1}^m ∂P((k/m) w̄^(l)) / ∂w_i          (Eq. 4, right sum)

and the left sum uses ``k = 0 .. m-1``. Completeness: Σ_i Attr_i → P(w̄) − P(0) as m grows.

Speed: one forward and one backward pass cover every layer and every step. The prompt runs
once with batch 1 (the shared prefix); at the input of block ``l`` the batch grows by ``m``
copies of the real row, whose activation at the target is then replaced by ``α_k w̄^(l)``.
Rows are independent, so the gradient of the summed probabilities with respect to each
layer's scaled activations is exactly the per-step gradient the sum needs.
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


def _grow_hook(extra: int):
    """Forward pre-hook on a block: append ``extra`` copies of batch row 0 (the real prompt)."""

    def hook(_module, args, kwargs):
        if args:
            h = args[0]
            h = torch.cat([h, h[:1].expand(extra, *h.shape[1:])], 0)
            return (h, *args[1:]), kwargs
        h = kwargs["hidden_states"]
        kwargs = dict(kwargs, hidden_states=torch.cat([h, h[:1].expand(extra, *h.shape[1:])], 0))
        return args, kwargs

    return hook


def _one_pass(adapter: FFNAdapter, batch: Batch, layers: list[int], alphas: torch.Tensor, with_baseline: bool):
    """Attribute ``layers`` in one forward/backward pass; returns (scores, acts, prob, p0) per layer."""
    pos = int(batch.positions[0])
    gold = int(batch.targets[0])
    m = alphas.numel()
    extra = m + int(with_baseline)
    leaves: dict[int, torch.Tensor] = {}
    real: dict[int, torch.Tensor] = {}
    starts: dict[int, int] = {}
    rows = {"n": 1}
    handles = []

    def act_hook(layer: int):
        def fn(out: torch.Tensor) -> torch.Tensor:
            a = out[0, pos].detach()
            real[layer] = a
            grid = alphas.to(out.dtype).to(out.device)
            if with_baseline:
                grid = torch.cat([grid, grid.new_zeros(1)])
            leaf = (grid[:, None] * a[None, :]).requires_grad_(True)
            leaves[layer] = leaf
            start = out.shape[0] - extra
            starts[layer] = start
            index = torch.arange(start, start + extra, device=out.device)
            return out.index_put((index, torch.full_like(index, pos)), leaf)

        return fn

    try:
        for layer in layers:
            handles.append(adapter.blocks[layer].register_forward_pre_hook(_grow_hook(extra), with_kwargs=True))
            handles.append(adapter.hook_activations(layer, act_hook(layer)))
        with torch.enable_grad():
            logits = adapter.model(**batch.inputs, use_cache=False).logits if adapter.causal else adapter.model(**batch.inputs).logits
            probs = logits[:, pos].to(torch.promote_types(logits.dtype, torch.float32)).softmax(-1)[:, gold]
            grads = torch.autograd.grad(probs[1:].sum(), [leaves[l] for l in layers])
    finally:
        for h in handles:
            h.remove()
    out = {}
    for layer, g in zip(layers, grads):
        start = starts[layer]
        p0 = float(probs[start + m].detach()) if with_baseline else float("nan")
        out[layer] = (real[layer] * g[:m].sum(0) / m, real[layer], float(probs[0].detach()), p0)
    return out


def integrated_gradients(
    model,
    tokenizer,
    prompt: str,
    answer: str,
    steps: int = 20,
    rule: str = "right",
    layers: list[int] | None = None,
    alphas: torch.Tensor | None = None,
    layers_per_pass: int | None = None,
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
        layers_per_pass: how many layers share one forward/backward pass (memory: the batch
            grows by ``m`` rows per layer); default all.
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
    layers = all_layers if layers is None else [int(l) for l in layers]
    for l in layers:
        if l not in all_layers:
            raise QuintetError(f"layer {l} does not exist; the model has layers 0..{adapter.n_layers - 1}")
    device = next(adapter.model.parameters()).device
    batch = encode(tokenizer, [prompt], [answer], adapter.causal, device=device)
    chunk = layers_per_pass or len(layers)
    results = {}
    for s in range(0, len(layers), chunk):
        results.update(_one_pass(adapter, batch, sorted(layers[s : s + chunk]), grid, with_baseline))
    n = adapter.n_neurons
    dtype = torch.promote_types(next(adapter.model.parameters()).dtype, torch.float32)
    scores = torch.zeros(adapter.n_layers, n, dtype=dtype)
    acts = torch.zeros(adapter.n_layers, n, dtype=dtype)
    p0 = torch.full((adapter.n_layers,), float("nan"), dtype=torch.float64)
    prob = float("nan")
    for l, (sc, a, p, b) in results.items():
        scores[l], acts[l], p0[l], prob = sc.detach().cpu(), a.cpu(), b, p
    return Attribution(scores, acts, prob, p0, layers)
