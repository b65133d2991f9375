"""A thin object holding a model, its tokenizer and the method's settings (functional API inside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from quintet.knowledge.adapters import FFNAdapter, get_adapter
from quintet.knowledge.attribution import Attribution, integrated_gradients
from quintet.knowledge.editing import answer_probs, relative_change
from quintet.knowledge.neurons import Neuron, coarse_neurons, refine_neurons


@dataclass
class KnowledgeProbe:
    """``KnowledgeProbe(model, tokenizer).neurons(prompts, answer)`` and friends.

    Attributes: ``steps`` (m), ``rule``, ``threshold`` (t), ``sharing`` (p).
    """

    model: torch.nn.Module
    tokenizer: object
    steps: int = 20
    rule: str = "right"
    threshold: float = 0.2
    sharing: float = 0.5

    def __post_init__(self) -> None:
        self.adapter: FFNAdapter = get_adapter(self.model)

    def attribute(self, prompt: str, answer: str, **kwargs) -> Attribution:
        return integrated_gradients(self.adapter, self.tokenizer, prompt, answer, steps=self.steps,
                                    rule=self.rule, **kwargs)

    def coarse(self, prompts: Sequence[str], answer: str) -> list[list[Neuron]]:
        return [coarse_neurons(self.attribute(p, answer).scores, self.threshold) for p in prompts]

    def neurons(self, prompts: Sequence[str], answer: str, sharing: float | None = None) -> list[Neuron]:
        """Refined knowledge neurons of a fact expressed by ``prompts`` (§3.2)."""
        return refine_neurons(self.coarse(prompts, answer), self.sharing if sharing is None else sharing)

    def effect(self, prompts: Sequence[str], answers: Sequence[str], neurons: Sequence[Neuron], factor: float) -> float:
        """Relative change of the answers' probability when ``neurons`` are scaled by ``factor``."""
        before = answer_probs(self.adapter, self.tokenizer, prompts, answers).prob
        after = answer_probs(self.adapter, self.tokenizer, prompts, answers, neurons, factor).prob
        return relative_change(before, after)
