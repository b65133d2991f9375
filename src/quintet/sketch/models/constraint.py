"""Vitruvion's constraint model (§3.2): a pointer network conditioned on the primitives.

* A non-causal transformer **encoder** reads the primitive token streams (B, L).
* A causal **decoder** reads the constraint sequence. A constraint-type token is embedded from a
  table; a reference token is the encoder's output at the referenced primitive position (gathered,
  then linearly mapped), plus the reference-slot (coord) and constraint-index (pos) embeddings.
* The output is one softmax over ``[constraint-type tokens ; primitive positions]``: type logits
  from a linear head, position logits from scaled dot products between the decoder state and the
  encodings (Vinyals et al. 2015, pointer networks). Positions that are padding, or that the
  primitive grammar does not offer as references, are masked out.

Training injects truncated-normal noise into the primitives' coordinates (std 0.15 of the
normalised sketch, see :func:`quintet.sketch.models.noise.perturb_bins`) so that the model infers
the intended constraints of imprecise geometry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from quintet.sketch.models.grammar import (
    PAD,
    ConstraintDecodeState,
    ConstraintGrammar,
    PrimitiveGrammar,
)
from quintet.sketch.models.layers import Block, KVCache, TokenEmbedding, init_weights

KIND_CONSTRAINT = "constraint"


@dataclass
class ConstraintModelConfig:
    kind: str = KIND_CONSTRAINT
    grammar: dict = field(default_factory=lambda: PrimitiveGrammar().to_dict())
    constraint_grammar: dict = field(default_factory=lambda: ConstraintGrammar().to_dict())
    d_model: int = 128
    n_layers: int = 3  # decoder layers
    n_encoder_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.0
    max_len: int = 130  # primitive tokens
    max_primitives: int = 16
    max_constraint_len: int = 130
    noise_std: float = 0.15
    noise_max: float = 0.15  # truncation, in standard deviations

    def to_dict(self) -> dict:
        return asdict(self)


class ConstraintModel(nn.Module):
    """Encoder over primitives + causal pointer decoder over constraints (§3.2). ``forward`` takes
    int64 constraint streams ``(B, T)`` and primitive encodings ``float (B, L, d)`` and returns
    float logits ``(B, T, n_special + L)``: constraint types, then pointers to positions."""

    def __init__(self, config: ConstraintModelConfig):
        super().__init__()
        self.config = config
        self.grammar = PrimitiveGrammar.from_dict(config.grammar)
        self.cgrammar = ConstraintGrammar.from_dict(config.constraint_grammar)
        g, cg, d = self.grammar, self.cgrammar, config.d_model
        self.enc_embed = TokenEmbedding(g.vocab_size, g.n_coord_ids, config.max_primitives + 3, d)
        self.encoder = nn.ModuleList(Block(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.n_encoder_layers))
        self.enc_ln = nn.LayerNorm(d)
        self.dec_embed = TokenEmbedding(cg.n_special, 4, config.max_constraint_len + 2, d)
        self.ref_proj = nn.Linear(d, d)
        self.decoder = nn.ModuleList(
            Block(d, config.n_heads, config.d_ff, config.dropout, cross=True) for _ in range(config.n_layers)
        )
        self.ln = nn.LayerNorm(d)
        self.type_head = nn.Linear(d, cg.n_special, bias=False)
        self.ptr_q = nn.Linear(d, d)
        self.ptr_k = nn.Linear(d, d)
        init_weights(self)

    @property
    def head_dim(self) -> int:
        return self.config.d_model // self.config.n_heads

    def encode(self, val: torch.Tensor, coord: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Primitive streams (B, L) -> encodings (B, L, d) (non-causal, padding masked)."""
        mask = val != PAD
        x = self.enc_embed(val, coord, pos)
        for block in self.encoder:
            x = block(x, mask=mask)
        return self.enc_ln(x)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(
            self.config.n_layers, batch, self.config.n_heads, max_len or self.config.max_constraint_len, self.head_dim, p.device, p.dtype
        )

    def embed_constraints(self, tok: torch.Tensor, coord: torch.Tensor, pos: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        """Decoder inputs (B, T, d): type tokens from the table, references = gathered encodings."""
        ns = self.cgrammar.n_special
        is_ref = tok >= ns
        table_tok = torch.where(is_ref, torch.zeros_like(tok), tok)
        x = self.dec_embed(table_tok, coord, pos)
        ref_pos = (tok - ns).clamp(min=0, max=enc.shape[1] - 1)
        gathered = enc.gather(1, ref_pos[..., None].expand(-1, -1, enc.shape[-1]))
        ref_x = self.ref_proj(gathered) - self.dec_embed.val(table_tok)
        return x + is_ref[..., None] * ref_x

    def forward(
        self,
        tok: torch.Tensor,
        coord: torch.Tensor,
        pos: torch.Tensor,
        enc: torch.Tensor,
        ref_mask: torch.Tensor,
        *,
        enc_valid: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Joint logits (B, T, n_special + L) of the next constraint token.

        ``tok, coord, pos: (B, T)`` constraint streams in the joint space; ``enc: (B, L, d)`` primitive
        encodings; ``ref_mask: (B, L)`` positions that may be referenced; ``enc_valid: (B, L)``
        non-padding primitive positions (cross-attention mask).
        """
        x = self.embed_constraints(tok, coord, pos, enc)
        offset = cache.length if cache is not None else 0
        for i, block in enumerate(self.decoder):
            memory_kv = None
            if cache is not None:
                if cache.cross[i] is None:
                    cache.cross[i] = block.cross.project_kv(enc)
                memory_kv = cache.cross[i]
            x = block(
                x,
                causal=True,
                memory=enc if memory_kv is None else None,
                memory_kv=memory_kv,
                memory_mask=enc_valid,
                cache=cache.layers[i] if cache is not None else None,
                offset=offset,
            )
        if cache is not None:
            cache.length += tok.shape[1]
        h = self.ln(x)
        type_logits = self.type_head(h)
        ptr = self.ptr_q(h) @ self.ptr_k(enc).transpose(1, 2) / math.sqrt(self.config.d_model)
        ptr = ptr.masked_fill(~ref_mask[:, None, :], float("-inf"))
        return torch.cat([type_logits, ptr], dim=-1)

    def grammar_masks(self, tok: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
        """(B, T-1, n_special+L) masks of the outputs the constraint grammar permits after each
        prefix of ``tok`` (B, T) — replayed with :class:`ConstraintDecodeState`."""
        B, T = tok.shape
        state = ConstraintDecodeState(self.cgrammar, ref_mask, max_len=10**6)
        out = []
        for t in range(1, T):
            out.append(state.allowed())
            state.advance(tok[:, t])
        return torch.stack(out, dim=1)

    def token_nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-token NLL (nats) of the constraint targets (B, T-1), grammar-masked; 0 at Pad."""
        enc = self.encode(batch["val"], batch["coord"], batch["pos"])
        tok, ref_mask = batch["c_tok"], batch["ref_mask"]
        logits = self(
            tok[:, :-1], batch["c_coord"][:, :-1], batch["c_pos"][:, :-1], enc, ref_mask, enc_valid=batch["val"] != PAD
        )
        targets = tok[:, 1:]
        allowed = self.grammar_masks(tok, ref_mask)
        logits = logits.masked_fill(~allowed, float("-inf"))
        logp = F.log_softmax(logits.float(), dim=-1)
        safe = targets.clamp(max=logp.shape[-1] - 1)
        nll = -logp.gather(-1, safe[..., None]).squeeze(-1)
        return nll.masked_fill(targets == PAD, 0.0)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        nll = self.token_nll(batch)
        n = int((batch["c_tok"][:, 1:] != PAD).sum())
        return nll.sum() / max(n, 1), n

    @torch.no_grad()
    def accuracy(self, batch: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
        """Teacher-forced argmax accuracy: (correct, total, correct refs, total refs)."""
        enc = self.encode(batch["val"], batch["coord"], batch["pos"])
        tok, ref_mask = batch["c_tok"], batch["ref_mask"]
        logits = self(
            tok[:, :-1], batch["c_coord"][:, :-1], batch["c_pos"][:, :-1], enc, ref_mask, enc_valid=batch["val"] != PAD
        )
        logits = logits.masked_fill(~self.grammar_masks(tok, ref_mask), float("-inf"))
        pred = logits.argmax(-1)
        targets = tok[:, 1:]
        valid = targets != PAD
        refs = targets >= self.cgrammar.n_special
        ok = (pred == targets) & valid
        return int(ok.sum()), int(valid.sum()), int((ok & refs).sum()), int(refs.sum())
