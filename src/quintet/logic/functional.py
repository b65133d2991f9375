"""The fused logic layer: one autograd function per layer, four coefficients per neuron.

A neuron with gate distribution ``p = softmax(w)`` and inputs ``a = x[ia]``, ``b = x[ib]`` outputs
``c0 + c1 a + c2 b + c3 ab`` with ``c = p @ GATE_COEFFS`` (Petersen et al. 2022, Eq. 2 with the
relaxations of Table 1 collected by powers of a and b). The backward pass is written out:

    dL/da = g (c1 + c3 b),   dL/db = g (c2 + c3 a),   dL/dc = sum_batch g * (1, a, b, ab),

and the input gradient is scattered back with two ``index_add_``. Activations are kept
feature-major, ``(features, batch)``, so that the gathers and scatters move whole rows; a layer
returns the transposed view, so consecutive layers pass their activations on without a copy.
"""

from __future__ import annotations

import torch

from quintet.logic.gates import gate_coefficients


def _row_dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(u * v).sum(1)`` as a batched matrix product, without the ``(rows, batch)`` temporary."""
    return torch.bmm(u.unsqueeze(1), v.unsqueeze(2)).view(-1)


class _FusedLogicLayer(torch.autograd.Function):
    """``y = c0 + c1 a + c2 b + c3 ab`` on feature-major activations; see the module docstring."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeffs: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor,
                grad_factor: float) -> torch.Tensor:
        a = x.index_select(0, idx_a)
        b = x.index_select(0, idx_b)
        c0, c1, c2, c3 = coeffs.unsqueeze(-1).unbind(1)
        slope_a = torch.addcmul(c1, c3, b)  # dy/da = c1 + c3 b
        y = torch.addcmul(torch.addcmul(c0, c2, b), a, slope_a)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b, slope_a, coeffs, idx_a, idx_b)
        ctx.in_features = x.shape[0]
        ctx.grad_factor = grad_factor
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        a, b, slope_a, coeffs, idx_a, idx_b = ctx.saved_tensors
        grad_x = grad_coeffs = None
        if ctx.needs_input_grad[0]:
            c2, c3 = coeffs[:, 2:3], coeffs[:, 3:4]
            grad_a = grad_y * slope_a
            grad_b = grad_y * torch.addcmul(c2, c3, a)
            grad_x = grad_y.new_zeros(ctx.in_features, grad_y.shape[1])
            grad_x.index_add_(0, idx_a, grad_a).index_add_(0, idx_b, grad_b)
            if ctx.grad_factor != 1.0:
                grad_x.mul_(ctx.grad_factor)
        if ctx.needs_input_grad[1]:
            g_b = grad_y * b
            grad_coeffs = torch.stack(
                [grad_y.sum(1), _row_dot(grad_y, a), g_b.sum(1), _row_dot(g_b, a)], dim=1)
        return grad_x, grad_coeffs, None, None, None


def neuron_coefficients(logits: torch.Tensor, hard: bool) -> torch.Tensor:
    """``(out, 4)``: coefficients of (1, a, b, ab) from gate logits ``(out, 16)``.

    ``hard=False`` mixes the 16 gates with ``softmax(logits)`` (training); ``hard=True`` takes the
    argmax gate (the discretised network).
    """
    table = gate_coefficients(logits.dtype, logits.device)
    if hard:
        return table[logits.argmax(-1)]
    return torch.softmax(logits, dim=-1) @ table


def logic_layer(x: torch.Tensor, logits: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor,
                hard: bool = False, grad_factor: float = 1.0) -> torch.Tensor:
    """One layer of a differentiable logic gate network.

    x: ``(batch, in)`` with values in [0, 1]; logits: ``(out, 16)``; idx_a, idx_b: ``(out,)`` int64
    wiring. Returns ``(batch, out)`` (a transposed view of a feature-major tensor).
    ``grad_factor`` scales the gradient passed to ``x`` (the reference's remedy for vanishing
    gradients in deep networks).
    """
    coeffs = neuron_coefficients(logits, hard).to(x.dtype)
    xt = x.t()
    if not xt.is_contiguous():
        xt = xt.contiguous()
    return _FusedLogicLayer.apply(xt, coeffs, idx_a, idx_b, float(grad_factor)).t()


def group_sum(x: torch.Tensor, k: int, tau: float = 1.0) -> torch.Tensor:
    """``(batch, n) -> (batch, k)``: sums of k contiguous groups of n/k outputs, divided by tau."""
    return x.reshape(*x.shape[:-1], k, x.shape[-1] // k).sum(-1) / tau
