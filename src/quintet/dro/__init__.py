"""Distributionally robust models with parametric likelihood ratios (Michel, Hashimoto & Neubig, ICLR 2022).

Functional objectives first (``ratio_dro_objectives``, ``cvar_loss``, ``GroupDRO``, the
non-parametric KL / chi-square / CVaR best responses), then the adversary model, the tasks
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

__all__ = [
    "Adversary",
    "BagOfEmbeddings",
    "BiLSTMClassifier",
    "GroupDRO",
    "METHODS",
    "RECIPES",
    "MLP",
    "ModelSpec",
    "RULES",
    "SmallCNN",
    "Split",
    "TASKS",
    "TaskData",
    "TrainConfig",
    "adversary_pool",
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
    "load_task",
    "minmax_select",
    "ratio_dro_objectives",
    "ratio_dro_value",
    "self_normalized_objectives",
    "train",
    "train_on",
    "uniform_group_loss",
    "worst_group_accuracy",
]
