"""Distributionally robust models with parametric likelihood ratios (Michel, Hashimoto & Neubig, ICLR 2022).

Functional objectives first (``ratio_dro_objectives``, ``cvar_loss``, ``GroupDRO``), then the
adversary model, the tasks (BiasedSST, Colored MNIST, Adult), the training loop and the
model-selection rules (average, oracle worst-group, minmax).
"""

from quintet.dro.experiments import METHODS, TrainConfig, train, train_on
from quintet.dro.models import (
    MLP,
    Adversary,
    BagOfEmbeddings,
    BiLSTMClassifier,
    ModelSpec,
    SmallCNN,
    build_model,
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
    group_accuracies,
    minmax_select,
    worst_group_accuracy,
)
from quintet.dro.tasks import TASKS, Split, TaskData, bias_sst, load_task

__all__ = [
    "Adversary",
    "BagOfEmbeddings",
    "BiLSTMClassifier",
    "GroupDRO",
    "METHODS",
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
