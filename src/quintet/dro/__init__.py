"""Distributionally robust models with parametric likelihood ratios (Michel, Hashimoto & Neubig, ICLR 2022)
and P-DRO with a generative adversary (Michel, Hashimoto & Neubig, ICLR 2021).

Functional objectives first (``ratio_dro_objectives``, ``pdro_objectives``, ``cvar_loss``,
``GroupDRO``, the non-parametric KL / chi-square / CVaR best responses), then the adversary models
(the ratio ``Adversary``, P-DRO's language models ``JointLM`` / ``GenerativeAdversary``), the tasks
(BiasedSST, Colored MNIST, Adult), the training loop under our recipe or the authors', and the
model-selection rules (average, oracle worst-group, minmax, the authors' greedy and cross-run minmax).
"""

from quintet.dro.experiments import (
    METHODS,
    RECIPES,
    TrainConfig,
    equal_group_order,
    train,
    train_on,
)
from quintet.dro.generative import (
    GenerativeAdversary,
    JointLM,
    LogNormalizer,
    adversary_targets,
    base_lm,
    joint_log_likelihood,
    pdro_objectives,
    pretrain_lm,
    split_log_likelihoods,
)
from quintet.dro.models import (
    MLP,
    Adversary,
    BagOfEmbeddings,
    BiLSTMClassifier,
    ModelSpec,
    SmallCNN,
    build_model,
)
from quintet.dro.nonparametric import (
    chi2_best_response,
    cvar_best_response,
    kl_best_response,
    nonparametric_loss,
)
from quintet.dro.objectives import (
    GroupDRO,
    batch_kl,
    batch_weights,
    cvar_loss,
    group_mean_losses,
    ratio_dro_objectives,
    ratio_dro_value,
    self_normalized_objectives,
    uniform_group_loss,
)
from quintet.dro.selection import (
    RULES,
    adversary_pool,
    global_minmax_select,
    greedy_minmax_select,
    group_accuracies,
    minmax_select,
    reverse_kl,
    worst_group_accuracy,
)
from quintet.dro.tasks import TASKS, Split, TaskData, bias_sst, load_task, topic_groups
from quintet.dro.tokens_comparison import compare_tokens
from quintet.dro.wordpiece import TOKENS, load_local_tokenizer, train_wordpiece

__all__ = [
    "Adversary",
    "BagOfEmbeddings",
    "BiLSTMClassifier",
    "GenerativeAdversary",
    "GroupDRO",
    "JointLM",
    "LogNormalizer",
    "METHODS",
    "RECIPES",
    "MLP",
    "ModelSpec",
    "RULES",
    "SmallCNN",
    "Split",
    "TASKS",
    "TOKENS",
    "compare_tokens",
    "load_local_tokenizer",
    "train_wordpiece",
    "TaskData",
    "TrainConfig",
    "adversary_pool",
    "adversary_targets",
    "base_lm",
    "batch_kl",
    "batch_weights",
    "chi2_best_response",
    "cvar_best_response",
    "equal_group_order",
    "global_minmax_select",
    "greedy_minmax_select",
    "kl_best_response",
    "nonparametric_loss",
    "reverse_kl",
    "topic_groups",
    "bias_sst",
    "build_model",
    "cvar_loss",
    "group_accuracies",
    "group_mean_losses",
    "joint_log_likelihood",
    "load_task",
    "minmax_select",
    "pdro_objectives",
    "pretrain_lm",
    "ratio_dro_objectives",
    "ratio_dro_value",
    "self_normalized_objectives",
    "split_log_likelihoods",
    "train",
    "train_on",
    "uniform_group_loss",
    "worst_group_accuracy",
]
