"""The relaxations without the program language: blend, loop and index plain tensors
(Petersen et al., NeurIPS 2021, Sec. 3.2-3.3).

>>> p = soft_gt(x, 0.0, beta=10.0)                    # P(x > 0), shape (batch,)
>>> y = soft_if(p, x, -x)                             # relaxed |x|
>>> w = index_weights(position, n=8, beta=4.0)        # relaxed one-hot of a real index
>>> v = soft_read(array, w)                           # array[position]
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

from quintet.algovision.scope import blend, expand_weight
from quintet.algovision.statements import MaxIterationsWarning
from quintet.core.errors import QuintetError

__all__ = ["soft_if", "soft_while", "index_weights", "soft_read", "soft_write"]

State = Sequence[torch.Tensor]


def _states(value, where: str) -> tuple[torch.Tensor, ...]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, torch.Tensor) for v in values):
        raise QuintetError(f"{where}: expected a tensor or a tuple of tensors")
    return values


def _decide(p: torch.Tensor, hard: bool) -> torch.Tensor:
    return (p > 0.5).to(p.dtype) if hard else p


def soft_if(p: torch.Tensor, if_true, if_false, hard: bool = False):
    """``p * if_true + (1 - p) * if_false`` per batch element; ``p: (batch,)`` (or more axes that
    lead the values' shapes), values tensors or equally long tuples of tensors."""
    t, f = _states(if_true, "soft_if if_true"), _states(if_false, "soft_if if_false")
    if len(t) != len(f):
        raise QuintetError(f"soft_if: the branches give {len(t)} and {len(f)} values; expected the same number")
    w = _decide(p, hard)
    out = tuple(blend(b, a, expand_weight(w, a.dim(), "soft_if", f"value {k}")) for k, (a, b) in enumerate(zip(t, f)))
    return out if isinstance(if_true, (tuple, list)) else out[0]


def soft_while(condition: Callable[..., torch.Tensor], body: Callable[..., State], state: State,
               max_iter: int = 1024, epsilon: float = 1e-5, hard: bool = False) -> tuple[torch.Tensor, ...]:
    """Relaxed ``while condition(*state): state = body(*state)``.

    Returns ``sum_k P(stop after k iterations) * state_k`` where the probability of running
    iteration ``k`` is the product of the conditions so far.  Stops once that probability is at
    most ``epsilon`` for every batch element, or after ``max_iter`` iterations (with a
    :class:`MaxIterationsWarning`).
    """
    if max_iter < 1:
        raise QuintetError(f"soft_while: max_iter must be >= 1, got {max_iter}")
    state = _states(state, "soft_while state")
    go = _decide(condition(*state), hard)
    total = [expand_weight(1 - go, s.dim(), "soft_while", "state") * s for s in state]
    i = 0
    while i < max_iter and float(go.detach().max()) > epsilon:
        state = _states(body(*state), "soft_while body")
        stop = go * (1 - _decide(condition(*state), hard))
        go = go - stop
        total = [acc + expand_weight(stop, s.dim(), "soft_while", "state") * s for acc, s in zip(total, state)]
        i += 1
    if float(go.detach().max()) > epsilon:
        warnings.warn(f"soft_while: stopped at max_iter={max_iter} with continue probability {float(go.detach().max()):.3g}",
                      MaxIterationsWarning, stacklevel=2)
    return tuple(acc + expand_weight(go, s.dim(), "soft_while", "state") * s for acc, s in zip(total, state))


def index_weights(position: torch.Tensor, n: int, beta: float) -> torch.Tensor:
    """Relaxed one-hot ``(batch, n)`` of a real-valued index ``position: (batch,)``: the probability
    that ``position`` plus logistic noise of scale ``1/beta`` rounds to ``j``."""
    if n < 1 or beta <= 0:
        raise QuintetError(f"index_weights: need n >= 1 and beta > 0, got n={n}, beta={beta}")
    j = torch.arange(n, dtype=position.dtype, device=position.device)
    d = position.unsqueeze(-1) - j
    return torch.sigmoid(beta * (d + 0.5)) - torch.sigmoid(beta * (d - 0.5))


def _check_weights(x: torch.Tensor, weights: torch.Tensor, where: str) -> torch.Tensor:
    if x.dim() < 2 or weights.shape != x.shape[:2]:
        raise QuintetError(f"{where}: weights of shape {tuple(weights.shape)} do not match the first two axes "
                           f"(batch, n) of an array of shape {tuple(x.shape)}")
    return expand_weight(weights, x.dim(), where, "array")


def soft_read(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j weights[:, j] * x[:, j]``: read ``x: (batch, n, ...)`` at a relaxed index."""
    return (_check_weights(x, weights, "soft_read") * x).sum(1)


def soft_write(x: torch.Tensor, weights: torch.Tensor, value: torch.Tensor | float) -> torch.Tensor:
    """``x[:, j] = w_j * value + (1 - w_j) * x[:, j]``: write ``value: (batch, ...)`` at a relaxed index."""
    w = _check_weights(x, weights, "soft_write")
    if isinstance(value, torch.Tensor):
        value = value.unsqueeze(1)
    return w * value + (1 - w) * x
