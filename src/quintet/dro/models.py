"""Small models sized for 2 CPU cores, and the adversary built from the same architecture.

Every model maps a batch ``x`` to ``(B, n_out)`` scores. The classifier uses ``n_out = n_classes``
(logits); the adversary (paper Section 3.3: "same architecture as the model, with its own head")
uses ``n_out = n_classes`` too and reads its log-ratio ``r(x, y)`` at column ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from quintet.core.errors import QuintetError

__all__ = ["ModelSpec", "BiLSTMClassifier", "BagOfEmbeddings", "SmallCNN", "MLP", "Adversary", "build_model"]


@dataclass(frozen=True)
class ModelSpec:
    """What ``build_model`` needs: ``kind`` in {bilstm, boe, cnn, mlp} and its sizes.

    Every model maps a batch to logits ``float (B, n_out)``; the adversary (paper Section 3.3)
    is the same architecture with its own weights.
    """

    kind: str
    n_out: int
    vocab_size: int = 0
    in_features: int = 0
    in_channels: int = 2
    embed_dim: int = 64
    hidden: int = 64
    learned_init: bool = False  # BiLSTM: learned initial (h0, c0), as in the authors' model


class BiLSTMClassifier(nn.Module):
    """Embedding -> 1-layer BiLSTM -> max-pool over time -> linear. ``x: (B, T)`` int64, 0 = pad.

    ``learned_init=True`` adds trainable initial states ``(h0, c0)`` per direction, drawn from
    ``N(0, 1/hidden)`` like the authors' BiLSTM; otherwise they are zeros.
    """

    def __init__(self, vocab_size: int, n_out: int, embed_dim: int = 64, hidden: int = 64,
                 learned_init: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_out)
        self.init_state = nn.Parameter(torch.randn(2, 2, 1, hidden) / hidden**0.5) if learned_init else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x != 0).unsqueeze(-1)
        lengths = mask.squeeze(-1).sum(1).clamp_min(1).cpu()
        # packed so that the backward direction starts at each sentence's last word, not at padding
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        state = None
        if self.init_state is not None:
            h0, c0 = self.init_state.expand(2, 2, x.shape[0], self.init_state.shape[-1])
            state = (h0.contiguous(), c0.contiguous())
        h, _ = self.lstm(packed, state)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        h = h.masked_fill(~mask, -1e4).max(dim=1).values
        return self.head(h)


class BagOfEmbeddings(nn.Module):
    """Mean of word embeddings -> MLP. ``x: (B, T)`` int64, 0 = pad. The fast text option."""

    def __init__(self, vocab_size: int, n_out: int, embed_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x != 0).unsqueeze(-1).float()
        mean = (self.embed(x) * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.mlp(mean)


class SmallCNN(nn.Module):
    """Two conv blocks (each halving the size) -> flatten -> linear -> linear. ``x: (B, C, 14, 14)``."""

    def __init__(self, in_channels: int, n_out: int, hidden: int = 32, size: int = 14):
        super().__init__()
        side = size // 4
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden // 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(hidden // 2, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(hidden * side * side, 2 * hidden), nn.ReLU(),
        )
        self.head = nn.Linear(2 * hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


class MLP(nn.Module):
    """Two hidden ReLU layers. ``x: (B, in_features)`` float."""

    def __init__(self, in_features: int, n_out: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(spec: ModelSpec) -> nn.Module:
    """A fresh model for ``spec`` (the adversary is ``Adversary(build_model(spec))``)."""
    if spec.kind == "bilstm":
        return BiLSTMClassifier(spec.vocab_size, spec.n_out, spec.embed_dim, spec.hidden, spec.learned_init)
    if spec.kind == "boe":
        return BagOfEmbeddings(spec.vocab_size, spec.n_out, spec.embed_dim, spec.hidden)
    if spec.kind == "cnn":
        return SmallCNN(spec.in_channels, spec.n_out, spec.hidden)
    if spec.kind == "mlp":
        return MLP(spec.in_features, spec.n_out, spec.hidden)
    raise QuintetError(f"unknown model kind {spec.kind!r}; expected one of: bilstm, boe, cnn, mlp")


class Adversary(nn.Module):
    """A log-ratio model ``r_psi(x, y) = f_psi(x)[y]`` (paper Section 3.3).

    ``forward(x, y)`` -> ``(B,)`` log-ratios. The output layer starts at zero so the adversary
    begins at the uniform weighting ``w = 1`` (the ERM distribution).
    """

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        last = [m for m in body.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(x).gather(1, y.view(-1, 1)).squeeze(1)
