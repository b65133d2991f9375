"""Where the feed-forward network (FFN) lives in each supported Hugging Face architecture.

Dai et al. (2022, §2) view an FFN as a key-value memory: ``FFN(H) = GELU(H K^T) V``. The
*intermediate neurons* are the entries of ``GELU(H K^T)`` (post-activation, one per row of ``K``),
and the *value slot* of neuron ``i`` is row ``i`` of ``V`` — the vector that neuron adds to the
residual stream. Gated FFNs (SwiGLU in Llama, Mistral, Qwen2/3: ``FFN(H) = (act(H G^T) ⊙ H U^T) V``)
fit the same view with the gated product as the intermediate activation: the neurons are the
inputs of the down projection ``V`` and the value slots its columns. An :class:`FFNAdapter`
finds, for every transformer block, where that activation can be hooked — the output of the
activation module, or (gated FFNs) the input of the down projection — and a view of ``V`` as a
``(n_neurons, hidden)`` matrix (to edit it in place). No model code is copied: everything goes
through forward hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from quintet.core.errors import QuintetError

_GATED = ("layers", "mlp.down_proj", "mlp.down_proj", "linear", "input")
#: model_type -> (path of the block list, path of the hooked module inside a block, path of the
#:                FFN output projection inside a block, projection kind, hook site: the
#:                activation is the hooked module's "output" or its (first) "input")
_SPECS: dict[str, tuple[str, str, str, str, str]] = {
    "bert": ("encoder.layer", "intermediate", "output.dense", "linear", "output"),
    "roberta": ("encoder.layer", "intermediate", "output.dense", "linear", "output"),
    "electra": ("encoder.layer", "intermediate", "output.dense", "linear", "output"),
    "distilbert": ("transformer.layer", "ffn.activation", "ffn.lin2", "linear", "output"),
    "gpt2": ("h", "mlp.act", "mlp.c_proj", "conv1d", "output"),
    "llama": _GATED,
    "mistral": _GATED,
    "qwen2": _GATED,
    "qwen3": _GATED,
}
CAUSAL_TYPES = frozenset({"gpt2", "llama", "mistral", "qwen2", "qwen3"})
SUPPORTED = tuple(_SPECS)


def _get(module: nn.Module, path: str) -> nn.Module:
    for name in path.split("."):
        module = getattr(module, name)
    return module


@dataclass
class FFNAdapter:
    """Hooks and value slots of one model's FFNs.

    Attributes:
        model: the wrapped ``PreTrainedModel`` (masked or causal LM head included).
        model_type: ``config.model_type`` (one of :data:`SUPPORTED`).
        blocks: the transformer blocks, in order (``n_layers`` of them).
        activations: per block, the module whose output (``site="output"``: the post-GELU
            activation) or first input (``site="input"``: the gated product entering the down
            projection) is the intermediate activation, shape ``(batch, seq, n_neurons)``.
        projections: per block, the FFN output projection holding the value slots.
        projection_kind: ``"linear"`` (``nn.Linear``) or ``"conv1d"`` (GPT-2's ``Conv1D``).
        site: ``"output"`` or ``"input"``, see ``activations``.
    """

    model: nn.Module
    model_type: str
    blocks: list[nn.Module]
    activations: list[nn.Module]
    projections: list[nn.Module]
    projection_kind: str
    site: str = "output"

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_neurons(self) -> int:
        return self.value_slots(0).shape[0]

    @property
    def causal(self) -> bool:
        """True for causal LMs (GPT-2, Llama, ...): the answer is the next token after the prompt."""
        return self.model_type in CAUSAL_TYPES

    def value_slots(self, layer: int) -> torch.Tensor:
        """The value matrix ``V`` of ``layer`` as a view of shape ``(n_neurons, hidden)``.

        Row ``i`` is the memory vector neuron ``i`` writes (§5 edits these rows in place).
        ``nn.Linear`` stores ``(hidden, n_neurons)``, GPT-2's ``Conv1D`` ``(n_neurons, hidden)``.
        """
        weight = self.projections[layer].weight
        return weight.T if self.projection_kind == "linear" else weight

    def word_embeddings(self) -> torch.Tensor:
        """The input word-embedding matrix ``(vocab, hidden)`` (the ``t`` and ``t'`` of §5.1)."""
        return self.model.get_input_embeddings().weight

    def hook_head(self, positions: "int | torch.Tensor"):
        """Make the LM head read only the target position(s): a forward pre-hook on the output
        embedding (the vocabulary projection, the costliest part of the head) that slices its input
        ``(batch, seq, hidden)`` to a contiguous ``(batch, 1, hidden)`` (a strided slice would make
        ``linear`` run one matrix-vector product per row). ``positions``: one int for all rows or
        ``(batch,)``. Returns the handle, or ``None`` when the model exposes no output embedding
        (then logits cover every position)."""
        head = self.model.get_output_embeddings()
        if head is None:
            return None

        def pre(_module, args):
            h = args[0]
            if isinstance(positions, int):
                return (h[:, positions : positions + 1].contiguous(), *args[1:])
            return (h[torch.arange(h.shape[0], device=h.device), positions][:, None], *args[1:])

        return head.register_forward_pre_hook(pre)

    def hook_activations(self, layer: int, fn: Callable[[torch.Tensor], torch.Tensor | None]):
        """Register ``fn(activation) -> replacement | None`` on ``layer``; returns the handle.

        A forward hook on the activation module, or (``site="input"``) a forward pre-hook on the
        down projection, so the replacement is what the value slots multiply either way."""
        module = self.activations[layer]
        if self.site == "output":
            return module.register_forward_hook(lambda _m, _i, out: fn(out))

        def pre(_module, args):
            new = fn(args[0])
            return None if new is None else (new, *args[1:])

        return module.register_forward_pre_hook(pre)

    def hook_block_input(self, layer: int, fn: Callable[[torch.Tensor], torch.Tensor]):
        """Register ``fn(hidden_states) -> replacement`` on the input of block ``layer`` (a forward
        pre-hook; the hidden states are the block's first argument in every supported model).

        The replacement may have more rows than the input: every block receives the attention
        mask the model built for its inputs — a 4-D ``(batch, 1, q, k)`` additive or boolean mask
        or ``None`` (``create_bidirectional_mask``/``create_causal_mask`` in BERT, RoBERTa,
        ELECTRA, DistilBERT, GPT-2 and the Llama family) — GPT-2 its ``(1, seq)`` position ids
        and the Llama family its rotary ``(cos, sin)`` of shape ``(1, seq, head_dim)``; built
        from a batch-1 input, all broadcast over the grown batch in eager and SDPA attention.
        Returns the handle."""

        def pre(_module, args, kwargs):
            if args:
                return (fn(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

        return self.blocks[layer].register_forward_pre_hook(pre, with_kwargs=True)


def get_adapter(model: nn.Module) -> FFNAdapter:
    """The :class:`FFNAdapter` of a ``transformers`` model (BERT, RoBERTa, DistilBERT, ELECTRA,
    GPT-2, and the gated Llama, Mistral, Qwen2 and Qwen3); raises :class:`QuintetError` naming the
    supported architectures otherwise."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in _SPECS:
        raise QuintetError(
            f"unsupported architecture {model_type or type(model).__name__!r}; "
            f"supported model types: {', '.join(SUPPORTED)}"
        )
    blocks_path, act_path, proj_path, kind, site = _SPECS[model_type]
    base = getattr(model, "base_model", model)
    try:
        blocks = list(_get(base, blocks_path))
        activations = [_get(b, act_path) for b in blocks]
        projections = [_get(b, proj_path) for b in blocks]
    except AttributeError as exc:
        raise QuintetError(f"{type(model).__name__} ({model_type}) lacks the expected FFN modules: {exc}") from exc
    if not blocks:
        raise QuintetError(f"{type(model).__name__} has no transformer blocks")
    return FFNAdapter(model, model_type, blocks, activations, projections, kind, site)
