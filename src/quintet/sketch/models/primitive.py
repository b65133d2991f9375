"""Vitruvion's primitive model (§3.1): a decoder-only transformer over primitive tokens, optionally
conditioned on an image through cross-attention to a ViT encoder (§3.3).

Input: the three integer streams ``val, coord, pos`` (B, T) of :class:`PrimitiveGrammar`; their
embeddings are summed. Output: logits over the value vocabulary for the next token (B, T, V).
The next-token distribution is restricted to the tokens the grammar permits (eq. 1 of the paper
factorises p(sketch) over tokens; we renormalise each factor over the grammatical tokens, which
is also what constrained sampling draws from).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from quintet.sketch.models.grammar import PAD, STOP, PrimitiveGrammar
from quintet.sketch.models.image import ImageEncoder
from quintet.sketch.models.layers import Block, KVCache, TokenEmbedding, init_weights

KIND_PRIMITIVE = "primitive"
KIND_IMAGE_PRIMITIVE = "image-primitive"


@dataclass
class PrimitiveModelConfig:
    """Sizes of the primitive model. Defaults train on 2 CPU cores; the paper used d=256, 12 layers,
    8 heads (its public configuration)."""

    kind: str = KIND_PRIMITIVE
    grammar: dict = field(default_factory=lambda: PrimitiveGrammar().to_dict())
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.0
    max_len: int = 130  # tokens, Start and Stop included
    max_primitives: int = 16
    image_size: int = 128
    patch: int = 16
    image_layers: int = 2

    @property
    def image(self) -> bool:
        return self.kind == KIND_IMAGE_PRIMITIVE

    def to_dict(self) -> dict:
        return asdict(self)


class PrimitiveModel(nn.Module):
    """Decoder-only transformer over primitive tokens (§3.1; image-conditioned, §3.3, when
    ``config.kind`` is ``"image-primitive"``). ``forward(val, coord, pos)`` with int64 streams
    ``(B, T)`` returns float logits ``(B, T, V)`` of the next value token."""

    def __init__(self, config: PrimitiveModelConfig):
        super().__init__()
        self.config = config
        self.grammar = PrimitiveGrammar.from_dict(config.grammar)
        g, d = self.grammar, config.d_model
        self.embed = TokenEmbedding(g.vocab_size, g.n_coord_ids, config.max_primitives + 3, d)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, config.d_ff, config.dropout, cross=config.image) for _ in range(config.n_layers)
        )
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, g.vocab_size, bias=False)
        self.image_encoder = (
            ImageEncoder(d, config.image_layers, config.n_heads, config.d_ff, config.image_size, config.patch, config.dropout)
            if config.image
            else None
        )
        init_weights(self)
        # category masks: row c = tokens allowed when the grammar expects category c (see masks())
        V = g.vocab_size
        cats = torch.zeros(4, V, dtype=torch.bool)
        cats[0, g.type_offset : g.bin_offset] = True
        cats[0, STOP] = True
        cats[1, g.bin_offset : g.flag_offset] = True
        cats[2, g.flag_offset : g.flag_offset + 2] = True
        cats[3, PAD] = True
        self.register_buffer("_category_masks", cats, persistent=False)
        cat_of = torch.full((V,), 0, dtype=torch.long)
        cat_of[g.bin_offset : g.flag_offset] = 1
        cat_of[g.flag_offset : g.flag_offset + 2] = 2
        cat_of[PAD] = 3
        self.register_buffer("_category_of", cat_of, persistent=False)

    @property
    def head_dim(self) -> int:
        return self.config.d_model // self.config.n_heads

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, 128, 128) -> (B, 64, d) patch encodings (only for image-conditioned models)."""
        if self.image_encoder is None:
            raise ValueError("this primitive model is not image-conditioned (kind 'primitive')")
        return self.image_encoder(image)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(
            self.config.n_layers, batch, self.config.n_heads, max_len or self.config.max_len, self.head_dim, p.device, p.dtype
        )

    def forward(
        self,
        val: torch.Tensor,
        coord: torch.Tensor,
        pos: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) of the token after each position.

        ``memory``: image encodings (B, S, d) for an image-conditioned model. With ``cache`` the
        tokens are appended at ``cache.length`` and the cache advances by T.
        """
        if self.config.image and memory is None and (cache is None or cache.cross[0] is None):
            raise ValueError("an image-conditioned primitive model needs image encodings (memory)")
        x = self.embed(val, coord, pos)
        offset = cache.length if cache is not None else 0
        for i, block in enumerate(self.blocks):
            memory_kv = None
            if cache is not None and self.config.image:
                if cache.cross[i] is None:
                    cache.cross[i] = block.cross.project_kv(memory)
                memory_kv = cache.cross[i]
            x = block(
                x,
                causal=True,
                memory=memory if memory_kv is None else None,
                memory_kv=memory_kv,
                cache=cache.layers[i] if cache is not None else None,
                offset=offset,
            )
        if cache is not None:
            cache.length += val.shape[1]
        return self.head(self.ln(x))

    def masks(self, targets: torch.Tensor) -> torch.Tensor:
        """(B, T, V) grammar masks for teacher forcing: the grammar state before a valid target is
        fixed by the target's category (type/Stop, coordinate, flag), so the mask is that
        category's row. Pad targets get a Pad-only row (they are excluded from the loss)."""
        return self._category_masks[self._category_of[targets]]

    def token_nll(self, val: torch.Tensor, coord: torch.Tensor, pos: torch.Tensor, image: torch.Tensor | None = None,
                  masked: bool = True) -> torch.Tensor:
        """Per-token negative log-likelihood in nats (B, T-1) of ``val[:, 1:]`` under the grammar-
        masked model (``masked=False``: the softmax over the whole vocabulary, as the paper
        scores it); zero at Pad targets."""
        memory = self.encode_image(image) if self.config.image else None
        logits = self(val[:, :-1], coord[:, :-1], pos[:, :-1], memory=memory)
        targets = val[:, 1:]
        if masked:
            logits = logits.masked_fill(~self.masks(targets), float("-inf"))
        logp = F.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(-1, targets[..., None]).squeeze(-1)
        return nll.masked_fill(targets == PAD, 0.0)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean NLL per target token of a batch ``{"val","coord","pos"[, "image"]}``; and the count."""
        nll = self.token_nll(batch["val"], batch["coord"], batch["pos"], batch.get("image"))
        n = int((batch["val"][:, 1:] != PAD).sum())
        return nll.sum() / max(n, 1), n


def init_from_unconditional(image_model: PrimitiveModel, primitive_model: PrimitiveModel) -> list[str]:
    """Copy a trained unconditional primitive model's weights (embeddings, self-attention, MLPs,
    head) into an image-conditioned model of the same sizes, in place; the image encoder and the
    cross-attention layers keep their fresh initialisation. Returns the names left fresh.

    Used as a two-stage schedule: the decoder already models sketches, so from the first step the
    only loss left to remove is what the image tells, and the gradient reaches the encoder instead
    of being spent on learning the token grammar.
    """
    if not image_model.config.image or primitive_model.config.image:
        raise ValueError("init_from_unconditional copies a 'primitive' model into an 'image-primitive' model")
    ours, theirs = image_model.state_dict(), primitive_model.state_dict()
    bad = [k for k, v in theirs.items() if k not in ours or ours[k].shape != v.shape]
    if bad:
        raise ValueError(f"the primitive model's sizes differ from the image model's (e.g. {bad[0]})")
    image_model.load_state_dict(theirs, strict=False)
    return sorted(set(ours) - set(theirs))


def bits(nats: float) -> float:
    """Nats -> bits (the paper reports NLL / ln 2)."""
    return nats / math.log(2.0)
