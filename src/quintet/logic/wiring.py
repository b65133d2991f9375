"""Fixed random wiring of a logic layer: which two inputs feed each neuron (Petersen et al. 2022,
Sec. 3; the two schemes of the reference package)."""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError, check_choice

SCHEMES = ("random", "unique")


def check_width(in_dim: int, out_dim: int) -> None:
    """Every input can be read only when ``2 * out_dim >= in_dim``."""
    if in_dim < 1 or out_dim < 1:
        raise QuintetError(f"a logic layer needs in_dim >= 1 and out_dim >= 1, got {in_dim} and {out_dim}")
    if 2 * out_dim < in_dim:
        raise QuintetError(f"a logic layer with {in_dim} inputs needs at least {(in_dim + 1) // 2} neurons "
                           f"so that every input is read; got {out_dim}")


def random_wiring(in_dim: int, out_dim: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each input appears about ``2 out / in`` times: a shuffled cycle over the inputs, cut into pairs."""
    slots = torch.randperm(2 * out_dim, generator=generator) % in_dim
    slots = torch.randperm(in_dim, generator=generator)[slots].reshape(2, out_dim)
    return slots[0].long(), slots[1].long()


def unique_wiring(in_dim: int, out_dim: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """No pair of inputs twice: pairs (0,1), (2,3), ..., then (1,2), (3,4), ..., then growing
    offsets, until ``out_dim`` pairs exist; the neurons' order is shuffled."""
    if in_dim < 2:
        raise QuintetError(f"unique wiring needs at least 2 inputs, got {in_dim}")
    x = torch.arange(in_dim)
    firsts, seconds = [x[0::2]], [x[1::2]]
    firsts[0] = firsts[0][: len(seconds[0])]
    count = len(seconds[0])
    if count < out_dim:
        a, b = x[1::2], x[2::2]
        m = min(len(a), len(b))
        firsts.append(a[:m])
        seconds.append(b[:m])
        count += m
    offset = 2
    while out_dim > count > offset and offset < in_dim:
        firsts.append(x[:-offset])
        seconds.append(x[offset:])
        count += in_dim - offset
        offset += 1
    if count < out_dim:
        raise QuintetError(f"unique wiring cannot give {out_dim} distinct pairs of {in_dim} inputs")
    a, b = torch.cat(firsts)[:out_dim], torch.cat(seconds)[:out_dim]
    perm = torch.randperm(out_dim, generator=generator)
    return a[perm].long(), b[perm].long()


def make_wiring(scheme: str, in_dim: int, out_dim: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(idx_a, idx_b)``, each ``(out_dim,)`` int64, by ``scheme`` (random or unique)."""
    check_choice("wiring scheme", scheme, SCHEMES)
    check_width(in_dim, out_dim)
    return (random_wiring if scheme == "random" else unique_wiring)(in_dim, out_dim, generator)
