"""Geometric validity mask for sampling primitives (beside the grammar mask of Vitruvion §3.1).

A sampled primitive is a drawable entity only when it is not degenerate:
:func:`quintet.sketch.models.data.tokens_to_sketch` rejects a zero-length line, a circle of
radius ``r <= 0`` and an arc whose three points :attr:`quintet.sketch.primitives.Arc.is_degenerate`
calls collinear (after :meth:`~quintet.sketch.primitives.Arc.through` orients them
counter-clockwise); SketchGraphs' filter keeps no such entity either.

:func:`forbidden_bins` gives, for the next coordinate token of the primitive being sampled, the
bins after which *no* completion of that primitive is accepted. Setting them to ``-inf`` before
the softmax renormalises the model's next-token distribution over valid geometry, token by token,
exactly as the grammar mask does over grammatical sequences. With bins decoded as
``v = -0.5 + b / (B - 1)`` (:func:`quintet.sketch.tokens.dequantize_value`):

* line ``x0 y0 x1 y1`` — at ``y1``: the bin that puts the end on the start (only when ``x1``'s
  bin equals ``x0``'s);
* circle ``cx cy r`` — at ``r``: the bins whose radius ``|v|`` is ``<= 0`` (none while ``B - 1`` is
  odd, as for every ``B = 2**bits``; computed, not assumed);
* arc ``sx sy mx my ex ey`` — at ``ey``: the bins making the arc degenerate, by the very
  floating-point test the decoder applies; at ``ex``: the bins after which every ``ey`` is
  degenerate (the end on the vertical line through a start and mid that share their x bin); at
  ``my``: the bin that puts mid on start (then every end is collinear).

Every other coordinate leaves a valid completion for each bin, so nothing is forbidden there, and
the three look-ahead rules keep a valid bin available at every step: a primitive sampled under the
mask is never rejected. The likelihood of a given sequence (teacher forcing, bits per primitive)
does not involve this mask.
"""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError
from quintet.sketch.primitives import _COLLINEAR, N_PARAMS, PRIMITIVE_TYPES

__all__ = ["arc_rejected", "bin_values", "check_geometry_layout", "forbidden_bins"]


def bin_values(bins: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Float64 coordinate values ``-0.5 + b / (num_bins - 1)`` of integer bins (the decoder's)."""
    return -0.5 + bins.to(torch.float64) / float(num_bins - 1)


def _signed_area(ax, ay, bx, by, cx, cy) -> torch.Tensor:
    """Twice the signed area of triangle abc, in the operation order of the primitives module."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def arc_rejected(sx, sy, mx, my, ex, ey) -> torch.Tensor:
    """Boolean tensor (broadcast of the float64 inputs): would the arc through start ``s``, mid
    ``m`` and end ``e`` be rejected by the decoder?

    Mirrors :meth:`Arc.through` (start and end exchanged when the points turn clockwise), the
    orientation check of :class:`Arc` and :attr:`Arc.is_degenerate`, operation for operation, so
    the answer equals the scalar code's for every input.
    """
    swap = _signed_area(sx, sy, mx, my, ex, ey) < 0
    ax, ay = torch.where(swap, ex, sx), torch.where(swap, ey, sy)
    cx, cy = torch.where(swap, sx, ex), torch.where(swap, sy, ey)
    area = _signed_area(ax, ay, mx, my, cx, cy)
    scale = torch.maximum(torch.maximum((cx - ax).abs(), (cy - ay).abs()),
                          torch.maximum((mx - ax).abs(), (my - ay).abs()))
    clockwise = area < -_COLLINEAR * (scale * scale)
    degenerate = (scale == 0.0) | (area <= _COLLINEAR * scale * scale)
    return clockwise | degenerate


def check_geometry_layout(type_names: tuple[str, ...], n_params: tuple[int, ...]) -> None:
    """Raise unless the grammar's primitive types carry the decoder's parameters (the mask reads
    coordinates by position: line ``x0 y0 x1 y1``, circle ``cx cy r``, arc ``sx sy mx my ex ey``)."""
    for name, k in zip(type_names, n_params):
        if name in PRIMITIVE_TYPES and k != N_PARAMS[PRIMITIVE_TYPES.index(name)]:
            raise QuintetError(
                f"the validity mask needs a {name} of {N_PARAMS[PRIMITIVE_TYPES.index(name)]} parameters; "
                f"this grammar gives it {k}"
            )


def forbidden_bins(type_names: tuple[str, ...], num_bins: int, cur_type: torch.Tensor, n_done: torch.Tensor,
                   params: torch.Tensor) -> torch.Tensor:
    """(batch, num_bins) mask of the bins the next coordinate may not take (see module docstring).

    ``cur_type`` (batch,): type index of the primitive being sampled, -1 between primitives;
    ``n_done`` (batch,): its parameters emitted so far; ``params`` (batch, k_max): their bins.
    Rows that are not inside a line, circle or arc forbid nothing.
    """
    B, dev = cur_type.shape[0], cur_type.device
    out = torch.zeros(B, num_bins, dtype=torch.bool, device=dev)
    v = bin_values(params, num_bins)
    cand = bin_values(torch.arange(num_bins, device=dev), num_bins)[None, :]  # (1, num_bins)

    def rows(name: str, j: int) -> torch.Tensor:
        if name not in type_names:
            return torch.zeros(0, dtype=torch.long, device=dev)
        return ((cur_type == type_names.index(name)) & (n_done == j)).nonzero().flatten()

    r = rows("line", 3)  # y1: zero length
    if r.numel():
        x0, y0, x1 = v[r, 0:1], v[r, 1:2], v[r, 2:3]
        out[r] = torch.hypot(x1 - x0, cand - y0) == 0
    r = rows("circle", 2)  # r: the decoder takes |v| as the radius
    if r.numel():
        out[r] = (cand.abs() <= 0).expand(r.numel(), -1)
    r = rows("arc", 3)  # my: mid on start leaves only collinear ends
    if r.numel():
        out[r] = (v[r, 2:3] == v[r, 0:1]) & (cand == v[r, 1:2])
    r = rows("arc", 4)  # ex: every ey rejected
    if r.numel():
        s_m = [v[r, j, None, None] for j in range(4)]  # (n, 1, 1) each
        out[r] = arc_rejected(*s_m, cand[:, :, None], cand[:, None, :]).all(-1)
    r = rows("arc", 5)  # ey: the decoder's own test
    if r.numel():
        out[r] = arc_rejected(*(v[r, j : j + 1] for j in range(5)), cand)
    return out
