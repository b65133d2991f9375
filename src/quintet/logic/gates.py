"""The 16 two-input Boolean gates and their probabilistic relaxations (Petersen et al., NeurIPS
2022, arXiv 2210.08277, Table 1).

For independent Bernoulli inputs with P(A=1)=a and P(B=1)=b, the expected output of every gate is
affine in (1, a, b, ab): ``g(a, b) = c0 + c1 a + c2 b + c3 ab``. A neuron holding a distribution
``p`` over the 16 gates therefore needs only the four coefficients ``c = p @ GATE_COEFFS``,
not 16 separate terms; the fused layer in :mod:`quintet.logic.functional` is built on this.

Gate ids follow the reference package (truth table over AB = 00, 01, 10, 11 read as a binary
number with AB = 00 as the most significant bit).
"""

from __future__ import annotations

import torch

GATE_NAMES: tuple[str, ...] = (
    "false", "and", "a_and_not_b", "a", "b_and_not_a", "b", "xor", "or",
    "nor", "xnor", "not_b", "b_implies_a", "not_a", "a_implies_b", "nand", "true",
)
PASS_THROUGH_A = 3  # the gate ``a``, favoured by the residual initialisation

# Rows: gates 0..15; columns: coefficients of (1, a, b, ab).
_COEFFS = [
    [0, 0, 0, 0],    # false
    [0, 0, 0, 1],    # a and b
    [0, 1, 0, -1],   # a and not b
    [0, 1, 0, 0],    # a
    [0, 0, 1, -1],   # b and not a
    [0, 0, 1, 0],    # b
    [0, 1, 1, -2],   # a xor b
    [0, 1, 1, -1],   # a or b
    [1, -1, -1, 1],  # not (a or b)
    [1, -1, -1, 2],  # not (a xor b)
    [1, 0, -1, 0],   # not b
    [1, 0, -1, 1],   # b implies a
    [1, -1, 0, 0],   # not a
    [1, -1, 0, 1],   # a implies b
    [1, 0, 0, -1],   # not (a and b)
    [1, 0, 0, 0],    # true
]


def gate_coefficients(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``(16, 4)``: each gate's coefficients of (1, a, b, ab)."""
    return torch.tensor(_COEFFS, dtype=dtype, device=device)


def truth_tables() -> torch.Tensor:
    """``(16, 4)`` int64: each gate's output for AB = 00, 01, 10, 11."""
    corners = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
    a, b = corners[:, 0], corners[:, 1]
    basis = torch.stack([torch.ones_like(a), a, b, a * b], dim=1)  # (4 corners, 4)
    return (gate_coefficients(torch.float64) @ basis.T).round().long()


def relaxed_gate(a: torch.Tensor, b: torch.Tensor, gate: int) -> torch.Tensor:
    """Expected output of gate ``gate`` (0..15) for independent inputs with P(1) = a, b."""
    if not 0 <= gate < 16:
        raise ValueError(f"gate id must be in 0..15, got {gate}")
    c0, c1, c2, c3 = _COEFFS[gate]
    return c0 + c1 * a + c2 * b + c3 * a * b


def gate_mixture(a: torch.Tensor, b: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``sum_i probs[..., i] * g_i(a, b)`` via the four coefficients. ``a, b, probs[..., 0]`` broadcast."""
    c = probs @ gate_coefficients(probs.dtype, probs.device)
    return c[..., 0] + c[..., 1] * a + c[..., 2] * b + c[..., 3] * a * b
