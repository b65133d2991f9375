"""P-DRO with a generative adversary (Michel, Hashimoto & Neubig, "Modeling the Second Player in
Distributionally Robust Optimization", ICLR 2021, arXiv 2103.10282).

The adversary is a generative model ``q_psi(x, y)`` of the training data. A base model ``p_0`` is
first fitted by maximum likelihood; ``q_psi`` starts as a copy of it and ``p_0`` stays frozen.

* model: ``w_i = B softmax_i(log q_psi(x_i, y_i) - log p_0(x_i, y_i))`` re-weights the per-example
  losses (importance weights of ``q_psi`` against the data, ``p_0`` standing in for the unknown data
  density; normalised over the batch so that ``mean(w) = 1``);
* adversary (the paper's relaxation, Section 3.2): the KL-constrained best response is
  ``q* ∝ p exp(l / tau)``; instead of maximising the weighted loss under the KL constraint,
  ``q_psi`` is fitted to ``q*`` by minimising ``KL(q* || q_psi)``, estimated on the batch drawn
  from ``p`` as ``-sum_i exp(l_i / tau) / Z * log q_psi(x_i, y_i)``, with ``Z`` the mean of
  ``sum_i exp(l_i / tau)`` over the last ``K`` batches (the authors' ``--adv-obj exp_kl
  --norm-k-adv K``). The temperature ``tau`` replaces the KL radius.

``p_0`` and ``q_psi`` are :class:`JointLM`: ``p(x, y) = p(y) prod_t p(x_t | y, x_<t) p(<eos> | y, x)``,
a one-layer LSTM over the task's token ids whose first input is the label.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from quintet.core.errors import QuintetError
from quintet.dro.objectives import _check_same_shape, _reduce, batch_weights, check_tau

__all__ = ["JointLM", "GenerativeAdversary", "LogNormalizer", "joint_log_likelihood", "split_log_likelihoods",
           "adversary_targets", "pdro_objectives", "pretrain_lm", "base_lm"]

#: sentences scored at once: the word log-probabilities of a chunk take (rows, length, vocabulary) floats
CHUNK = 128


def check_tokens(x: torch.Tensor, y: torch.Tensor, vocab_size: int, n_classes: int) -> torch.Tensor:
    """Sentence lengths ``(B,)`` of right-padded token ids ``x: (B, T)`` (0 = padding) with labels ``y: (B,)``."""
    if x.dtype != torch.long or x.dim() != 2:
        raise QuintetError(f"the language model needs token ids of shape (batch, length) and dtype int64, got "
                           f"{tuple(x.shape)} {x.dtype}; P-DRO runs on text tasks such as biased-sst")
    if y.shape != x.shape[:1]:
        raise QuintetError(f"labels {tuple(y.shape)} do not match the {x.shape[0]} sentences")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise QuintetError(f"token ids must lie in [0, {vocab_size - 1}], got [{int(x.min())}, {int(x.max())}]")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise QuintetError(f"labels must lie in [0, {n_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    words = x != 0
    if bool((words[:, 1:] & ~words[:, :-1]).any()):
        raise QuintetError("padding (id 0) must only trail each sentence")
    return words.sum(1)


class JointLM(nn.Module):
    """A language model of (sentence, label) pairs: ``forward(x, y)`` -> ``log p(x, y): (B,)``.

    ``x: (B, T)`` int64 right-padded with 0, ``y: (B,)`` int64. ``p(y)`` is a learned prior
    (``label_logits``); the LSTM reads the label's embedding, then the words, and predicts every word
    and an end-of-sentence symbol (id ``vocab_size``).
    """

    def __init__(self, vocab_size: int, n_classes: int, embed_dim: int = 64, hidden: int = 64):
        super().__init__()
        if vocab_size < 2 or n_classes < 1:
            raise QuintetError(f"the language model needs a vocabulary of >= 2 ids and >= 1 label, got "
                               f"{vocab_size} and {n_classes}")
        self.vocab_size, self.n_classes = vocab_size, n_classes
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.label_embed = nn.Embedding(n_classes, embed_dim)
        self.label_logits = nn.Parameter(torch.zeros(n_classes))
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size + 1)

    @property
    def eos(self) -> int:
        return self.vocab_size

    def hidden_states(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, T + 1, hidden)``: state ``t`` predicts token ``t`` (the end symbol after the last
        word) from the label and the words before it; ``head`` maps it to the logits."""
        inputs = torch.cat([self.label_embed(y).unsqueeze(1), self.embed(x)], 1)
        return self.lstm(inputs)[0]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return joint_log_likelihood(self, x, y)


def joint_log_likelihood(lm: JointLM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log p(x, y) = log p(y) + sum_t log p(x_t | y, x_<t) + log p(<eos> | y, x)``, per sentence ``(B,)``
    (scored ``CHUNK`` sentences at a time)."""
    lengths = check_tokens(x, y, lm.vocab_size, lm.n_classes)
    if len(y) > CHUNK:
        return torch.cat([joint_log_likelihood(lm, x[i : i + CHUNK], y[i : i + CHUNK]) for i in range(0, len(y), CHUNK)])
    batch, width = x.shape
    targets = torch.cat([x, x.new_zeros(batch, 1)], 1)
    rows = torch.arange(batch, device=x.device)
    targets[rows, lengths] = lm.eos
    inside = torch.arange(width + 1, device=x.device).unsqueeze(0) <= lengths.unsqueeze(1)
    # the output layer runs on the predicted positions only, not on the padding
    h = lm.hidden_states(x, y)[inside]
    log_probs = -F.cross_entropy(lm.head(h), targets[inside], reduction="none")
    words = torch.zeros(batch, dtype=log_probs.dtype, device=x.device).index_add(
        0, rows.unsqueeze(1).expand(-1, width + 1)[inside], log_probs)
    return F.log_softmax(lm.label_logits, 0)[y] + words


@torch.no_grad()
def split_log_likelihoods(lm: JointLM, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``log p(x, y): (N,)`` of a whole split, ``batch`` sentences at a time (each trimmed of its padding)."""
    from quintet.dro.tasks import trim_padding

    return torch.cat([lm(trim_padding(x[i : i + batch]), y[i : i + batch]) for i in range(0, len(y), batch)])


class GenerativeAdversary(nn.Module):
    """``forward(x, y)`` -> ``log q_psi(x, y) - log p_0(x, y): (B,)``. ``q_psi`` (``self.lm``) starts
    as a copy of ``base`` (``p_0``), which is frozen: at the start every log-ratio is 0. Pass
    ``log_p0`` when it is known (the training split's, computed once) to skip the base model."""

    def __init__(self, base: JointLM):
        super().__init__()
        self.lm = copy.deepcopy(base)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, log_p0: torch.Tensor | None = None) -> torch.Tensor:
        if log_p0 is None:
            with torch.no_grad():
                log_p0 = self.base(x, y)
        return self.lm(x, y) - log_p0


class LogNormalizer:
    """``log`` of the mean of ``exp(v)`` over the last ``window`` values ``v`` (the authors'
    ``LogRunningAverage``): the normaliser ``log Z`` of the adversary's targets over ``K`` batches.
    ``history`` is JSON-able, so a checkpoint resumes it exactly."""

    def __init__(self, window: int, history: list[float] | None = None):
        if not (isinstance(window, int) and window >= 1):
            raise QuintetError(f"the normaliser window K must be an integer >= 1, got {window!r}")
        self.window = window
        self.history = list(history or [])[-window:]

    def update(self, log_value: float) -> float:
        """Add ``log_value`` and return the current ``log Z``."""
        self.history = [*self.history, float(log_value)][-self.window:]
        return float(torch.logsumexp(torch.tensor(self.history, dtype=torch.float64), 0)) - math.log(len(self.history))


def adversary_targets(losses: torch.Tensor, tau: float, log_normalizer: float) -> torch.Tensor:
    """``exp(l_i / tau - log Z)``: the weight of each example of the batch in the adversary's
    likelihood (paper Section 3.2). With ``log Z = logsumexp(l / tau)`` they sum to 1; as
    ``tau -> inf`` they tend to ``1 / B``, and the adversary keeps fitting the data (MLE)."""
    check_tau(tau)
    return torch.exp(losses.detach().double() / tau - log_normalizer).to(losses.dtype)


def pdro_objectives(losses: torch.Tensor, log_ratios: torch.Tensor, tau: float, log_normalizer: float,
                    reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """The two players' losses for one batch.

    * model: ``reduce(w.detach() * losses)`` with ``w = B softmax(log q_psi - log p_0)``;
    * adversary: ``-sum_i exp(l_i / tau - log Z) * (log q_psi - log p_0)_i``, the estimate of
      ``KL(q* || q_psi)`` up to terms free of ``psi`` (``log p_0`` is frozen, so its gradient is
      that of the authors' ``-sum_i exp(l_i / tau - log Z) log q_psi(x_i, y_i)``).

    ``losses, log_ratios: (B,)``; ``log_normalizer``: ``log Z`` from :class:`LogNormalizer`.
    """
    _check_same_shape(losses, log_ratios)
    targets = adversary_targets(losses, tau, log_normalizer)
    model_loss = _reduce(batch_weights(log_ratios).detach() * losses, reduction)
    adversary_loss = -(targets * log_ratios).sum()
    return model_loss, adversary_loss


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    digest = hashlib.sha256(x.contiguous().numpy().tobytes())
    digest.update(y.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def pretrain_lm(x: torch.Tensor, y: torch.Tensor, vocab_size: int, n_classes: int, embed_dim: int = 64,
                hidden: int = 64, epochs: int = 2, seed: int = 0, batch_size: int = 64, lr: float = 1e-3,
                log: Callable[[str], None] | None = None) -> JointLM:
    """The maximum-likelihood base ``p_0``: Adam on the mean token negative log-likelihood of the
    training pairs ``x: (N, T)``, ``y: (N,)``. Runs under its own seed and leaves the global
    random state as it found it."""
    from quintet.dro.tasks import trim_padding

    check_tokens(x, y, vocab_size, n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = JointLM(vocab_size, n_classes, embed_dim, hidden)
        optimizer = torch.optim.Adam(lm.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            total, count = 0.0, 0
            for start in range(0, len(y), batch_size):
                idx = order[start : start + batch_size]
                xb = trim_padding(x[idx])
                tokens = int((xb != 0).sum()) + 2 * len(idx)  # words, end symbols and labels
                loss = -lm(xb, y[idx]).sum() / tokens
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + float(loss.detach()) * tokens, count + tokens
            if log:
                log(f"base language model epoch {epoch + 1}/{epochs}: {total / count:.3f} nats per token")
    lm.eval()
    return lm


def base_lm(x: torch.Tensor, y: torch.Tensor, vocab_size: int, n_classes: int, embed_dim: int, hidden: int,
            epochs: int, seed: int, cache_dir: str | Path | None = None, save: bool = True,
            log: Callable[[str], None] | None = None) -> JointLM:
    """:func:`pretrain_lm`, cached in ``cache_dir`` (safetensors + JSON configuration, atomic
    writes): a later call with the same data and settings loads it instead of training again."""
    from quintet.core.io import latest_checkpoint, load_checkpoint, save_checkpoint

    config = {"vocab_size": vocab_size, "n_classes": n_classes, "embed_dim": embed_dim, "hidden": hidden,
              "epochs": epochs, "seed": seed, "n_train": len(y), "data": _fingerprint(x, y)}
    if cache_dir is not None and latest_checkpoint(cache_dir) is not None:
        lm = JointLM(vocab_size, n_classes, embed_dim, hidden)
        load_checkpoint(cache_dir, lm, expected_config=config)
        lm.eval()
        if log:
            log(f"base language model loaded from {cache_dir}")
        return lm
    lm = pretrain_lm(x, y, vocab_size, n_classes, embed_dim, hidden, epochs, seed, log=log)
    if cache_dir is not None and save:
        save_checkpoint(cache_dir, lm, step=epochs, config=config)
    return lm
