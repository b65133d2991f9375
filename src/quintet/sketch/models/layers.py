"""Transformer pieces shared by Vitruvion's models: attention with a key/value cache, pre-norm
blocks with optional cross-attention, and the summed three-stream token embedding (§3.1).

Shapes: ``x: (batch, time, d)``; masks are boolean, ``True`` = may attend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from quintet.core.errors import QuintetError


@dataclass
class LayerCache:
    """Keys and values of one attention layer, preallocated to ``max_len``: (batch, heads, T, dh)."""

    k: torch.Tensor
    v: torch.Tensor


class KVCache:
    """Per-layer self-attention caches plus the cross-attention keys/values of a fixed memory.

    ``length`` is the number of positions already written; :meth:`step` advances it.
    """

    def __init__(self, n_layers: int, batch: int, heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, heads, max_len, head_dim)
        self.layers = [
            LayerCache(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
            for _ in range(n_layers)
        ]
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self.length = 0
        self.max_len = max_len


class Attention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, eq. 1) over ``x`` or a ``memory``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.h, self.dh = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.h, self.dh).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: LayerCache | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        """Attend from ``x`` (B, T, d).

        * self-attention: keys from ``x``; with ``cache`` the new keys are written at
          ``offset … offset+T`` and the queries attend to all ``offset+T`` cached positions.
        * cross-attention: keys from ``memory`` (B, S, d) or precomputed ``kv``.
        ``mask`` (B, S) or (B, T, S) boolean; ``causal`` adds the lower-triangular mask.
        """
        B, T, _ = x.shape
        q = self._split(self.q(x))
        if kv is not None:
            k, v = kv
        elif memory is not None:
            k, v = self.project_kv(memory)
        else:
            k, v = self.project_kv(x)
            if cache is not None:
                cache.k[:, :, offset : offset + T] = k
                cache.v[:, :, offset : offset + T] = v
                k, v = cache.k[:, :, : offset + T], cache.v[:, :, : offset + T]
        S = k.shape[2]
        attn_mask = None
        if causal and T > 1:
            qi = torch.arange(offset, offset + T, device=x.device)[:, None]
            ki = torch.arange(S, device=x.device)[None, :]
            attn_mask = (ki <= qi)[None, None]
        if mask is not None:
            m = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None]
            attn_mask = m if attn_mask is None else attn_mask & m
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout)
        self.ln_x = nn.LayerNorm(d_model) if cross else None
        self.cross = Attention(d_model, n_heads, dropout) if cross else None
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: LayerCache | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask=mask, causal=causal, cache=cache, offset=offset)
        if self.cross is not None and (memory is not None or memory_kv is not None):
            x = x + self.cross(self.ln_x(x), memory=memory, kv=memory_kv, mask=memory_mask)
        return x + self.mlp(self.ln2(x))


class TokenEmbedding(nn.Module):
    """Sum of value, parameter-type (coord) and position embeddings (Vitruvion §3.1, Fig. 4)."""

    def __init__(self, n_val: int, n_coord: int, n_pos: int, d_model: int):
        super().__init__()
        self.val = nn.Embedding(n_val, d_model)
        self.coord = nn.Embedding(n_coord, d_model)
        self.pos = nn.Embedding(n_pos, d_model)
        self.n_pos = n_pos

    def forward(self, val: torch.Tensor, coord: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``val, coord, pos: (B, T)`` integer streams -> (B, T, d).

        A position id beyond the table (a sketch with more primitives than the model was built
        for) is an error, not silently clamped onto the last position.
        """
        if pos.numel() and int(pos.max()) >= self.n_pos:
            raise QuintetError(
                f"position id {int(pos.max())} outside the model's 0..{self.n_pos - 1}: the sequence has more "
                "primitives (or constraints) than the model supports"
            )
        return self.val(val) + self.coord(coord) + self.pos(pos)


def init_weights(module: nn.Module) -> None:
    """GPT-style initialisation: N(0, 0.02) for linear and embedding weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
