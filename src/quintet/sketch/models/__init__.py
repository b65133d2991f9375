"""Vitruvion's generative models of parametric CAD sketches (Seff et al., ICLR 2022).

* :class:`PrimitiveModel` — decoder-only transformer over primitive tokens (§3.1), optionally
  image-conditioned through a ViT encoder (:class:`ImageEncoder`, §3.3);
* :class:`ConstraintModel` — encoder over primitives + pointer decoder over constraints (§3.2);
* :class:`PrimitiveGrammar` / :class:`ConstraintGrammar` — token layouts and decoding masks;
* :func:`save_model` / :func:`load_model` — checkpoints that record the model kind.

Beside them, in this package: :mod:`~quintet.sketch.models.sample` (sampling, primers, constraint
inference), :mod:`~quintet.sketch.models.validity` (the sampler's mask of degenerate geometry),
:mod:`~quintet.sketch.models.train` (the training loop),
:mod:`~quintet.sketch.models.experiment` and :mod:`~quintet.sketch.models.real_experiment` (the
experiments on procedural and on SketchGraphs sketches) and :mod:`~quintet.sketch.models.cli` (the
``train`` and ``generate`` commands). The layer builds on the foundation in :mod:`quintet.sketch`,
which never imports it.
"""

from quintet.sketch.models.checkpoint import KINDS, build_model, load_model, read_config, save_model
from quintet.sketch.models.constraint import KIND_CONSTRAINT, ConstraintModel, ConstraintModelConfig
from quintet.sketch.models.grammar import (
    ConstraintDecodeState,
    ConstraintGrammar,
    PrimitiveDecodeState,
    PrimitiveGrammar,
)
from quintet.sketch.models.image import ImageEncoder, check_image
from quintet.sketch.models.noise import perturb_bins, truncated_normal
from quintet.sketch.models.primitive import (
    KIND_IMAGE_PRIMITIVE,
    KIND_PRIMITIVE,
    PrimitiveModel,
    PrimitiveModelConfig,
    bits,
    init_from_unconditional,
)

__all__ = [
    "KINDS",
    "KIND_CONSTRAINT",
    "KIND_IMAGE_PRIMITIVE",
    "KIND_PRIMITIVE",
    "ConstraintDecodeState",
    "ConstraintGrammar",
    "ConstraintModel",
    "ConstraintModelConfig",
    "ImageEncoder",
    "PrimitiveDecodeState",
    "PrimitiveGrammar",
    "PrimitiveModel",
    "PrimitiveModelConfig",
    "bits",
    "build_model",
    "check_image",
    "init_from_unconditional",
    "load_model",
    "perturb_bins",
    "read_config",
    "save_model",
    "truncated_normal",
]
