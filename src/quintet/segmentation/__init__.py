"""Pin the Memory (Kim et al., "Pin the Memory: Learning to Generalize Semantic Segmentation",
CVPR 2022): memory-guided, meta-learned domain-generalised semantic segmentation.

Functional maths first (:mod:`memory`: read/write; :mod:`losses`: cohesion, divergence, slot
classification), then the network (:class:`SegmentationNet`, DeepLabV3+ with a categorical
memory), the training steps (:mod:`meta`: ERM, MLDG, memory-only, Pin-the-Memory episode), the
loops (:func:`train`, :func:`evaluate`, :func:`predict`), the data (CamVid by sequence, the
paper's benchmark folders, the authors' augmentations) and the read's diagnosis with its bounds.
"""

from quintet.segmentation.augmentations import (
    color_jitter,
    gaussian_blur,
    meta_augment,
    random_scale_crop,
)
from quintet.segmentation.data import (
    CAMVID_SOURCES,
    CAMVID_TARGETS,
    Domain,
    camvid_domains,
    check_images,
    check_labels,
    holdout_split,
)
from quintet.segmentation.diagnosis import (
    forced_read,
    max_attention_bound,
    memory_read_diagnosis,
    min_entropy_bound,
)
from quintet.segmentation.experiments import (
    METHODS,
    TrainConfig,
    evaluate,
    load_model,
    predict,
    train,
)
from quintet.segmentation.folders import CITYSCAPES_CLASSES, FOLDERS, load_folder, read_image
from quintet.segmentation.losses import (
    LossWeights,
    feature_cohesion_loss,
    memory_divergence_loss,
    segmentation_loss,
    slot_classification_loss,
    total_loss,
)
from quintet.segmentation.memory import (
    CategoricalMemory,
    class_sums,
    l2_normalize,
    mean_pairwise_cosine,
    memory_scores,
    momentum_update,
    read_attention,
    read_memory,
)
from quintet.segmentation.meta import (
    erm_step,
    initialise_memory,
    inner_buffers,
    inner_params,
    meta_step,
    split_domains,
)
from quintet.segmentation.metrics import (
    confusion_matrix,
    detectable_difference,
    iou_from_confusion,
    mean_iou,
    paired_statistics,
)
from quintet.segmentation.models import NetConfig, SegmentationNet, build_model

__all__ = [
    "CAMVID_SOURCES",
    "CAMVID_TARGETS",
    "CITYSCAPES_CLASSES",
    "CategoricalMemory",
    "Domain",
    "FOLDERS",
    "LossWeights",
    "METHODS",
    "NetConfig",
    "SegmentationNet",
    "TrainConfig",
    "build_model",
    "camvid_domains",
    "check_images",
    "check_labels",
    "class_sums",
    "color_jitter",
    "confusion_matrix",
    "detectable_difference",
    "erm_step",
    "evaluate",
    "feature_cohesion_loss",
    "forced_read",
    "gaussian_blur",
    "holdout_split",
    "initialise_memory",
    "inner_buffers",
    "inner_params",
    "iou_from_confusion",
    "l2_normalize",
    "load_folder",
    "load_model",
    "max_attention_bound",
    "mean_iou",
    "mean_pairwise_cosine",
    "memory_divergence_loss",
    "memory_read_diagnosis",
    "memory_scores",
    "meta_augment",
    "meta_step",
    "min_entropy_bound",
    "momentum_update",
    "paired_statistics",
    "predict",
    "random_scale_crop",
    "read_attention",
    "read_image",
    "read_memory",
    "segmentation_loss",
    "slot_classification_loss",
    "split_domains",
    "total_loss",
    "train",
]
