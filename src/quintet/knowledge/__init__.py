"""Knowledge neurons (Dai et al., ACL 2022, arXiv 2104.08696) on Hugging Face masked LMs and
causal LMs (GPT-2, gated Llama / Mistral / Qwen2 / Qwen3 FFNs; :func:`load_pretrained` gives
SmolLM2-135M).

Functional API: :func:`integrated_gradients` (§3.1) -> :func:`coarse_neurons` /
:func:`refine_neurons` / :func:`adapt_sharing_ratio` / :func:`adapt_refinement` (§3.2) -> :func:`answer_probs` with
``factor`` 0 or 2 (§4.2), :func:`update_fact` and :func:`erase_relation` (§5).
:func:`overlap` and :func:`drop_inter_relation` measure and remove knowledge neurons shared by facts
of different relations; :func:`check_on_heldout_facts` keeps only neurons that, suppressed alone,
leave facts outside the analysis nearly unchanged (optional refinements, not in the paper).
:class:`KnowledgeProbe` bundles a model, its tokenizer and the settings.
"""

from quintet.knowledge.adapters import SUPPORTED, FFNAdapter, get_adapter
from quintet.knowledge.attribution import (
    Attribution,
    gauss_legendre,
    integrated_gradients,
    quadrature,
    step_grid,
)
from quintet.knowledge.editing import (
    Scores,
    SlotEditor,
    answer_probs,
    edit_value_slots,
    erase_relation,
    exclusive,
    most_common,
    perplexity,
    relative_change,
    update_fact,
)
from quintet.knowledge.neurons import (
    activation_baseline,
    adapt_refinement,
    adapt_sharing_ratio,
    coarse_neurons,
    layer_histogram,
    refine_neurons,
)
from quintet.knowledge.pretrained import load_gguf, load_pretrained
from quintet.knowledge.probe import KnowledgeProbe
from quintet.knowledge.specificity import (
    check_on_heldout_facts,
    drop_inter_relation,
    inter_relation_neurons,
    overlap,
    suppressed_alone,
)

__all__ = [
    "SUPPORTED",
    "Attribution",
    "FFNAdapter",
    "KnowledgeProbe",
    "Scores",
    "SlotEditor",
    "activation_baseline",
    "adapt_refinement",
    "adapt_sharing_ratio",
    "answer_probs",
    "check_on_heldout_facts",
    "coarse_neurons",
    "drop_inter_relation",
    "edit_value_slots",
    "erase_relation",
    "exclusive",
    "gauss_legendre",
    "get_adapter",
    "integrated_gradients",
    "inter_relation_neurons",
    "layer_histogram",
    "load_gguf",
    "load_pretrained",
    "most_common",
    "overlap",
    "perplexity",
    "quadrature",
    "refine_neurons",
    "relative_change",
    "step_grid",
    "suppressed_alone",
    "update_fact",
]
