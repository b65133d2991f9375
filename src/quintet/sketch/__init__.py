"""Parametric CAD sketches (Vitruvion, Seff et al. ICLR 2022): the sketch model, SketchGraphs
reader, SolveSpace solving, rendering, DXF export, tokens and a procedural corpus.

This package is the foundation; the generative models (networks, sampling, training, their
experiments and CLI commands) live in :mod:`quintet.sketch.models`, which builds on it. No
module outside ``models/`` imports the models.
"""

from quintet.sketch.constraints import (
    ARITY,
    GEOMETRIC_TYPES,
    NUMERIC_TYPES,
    Constraint,
    ConstraintType,
    Ref,
    Sketch,
    load_sketch,
    save_sketch,
)
from quintet.sketch.geometry import max_residual, residual, residuals, transform_sketch
from quintet.sketch.primitives import N_PARAMS, PARTS, PRIMITIVE_TYPES, Arc, Circle, Line, Point
from quintet.sketch.tokens import (
    SketchTokens,
    decode_sketch,
    encode_sketch,
    normalize_sketch,
    quantize_sketch,
)

__all__ = [
    "ARITY",
    "GEOMETRIC_TYPES",
    "NUMERIC_TYPES",
    "N_PARAMS",
    "PARTS",
    "PRIMITIVE_TYPES",
    "Arc",
    "Circle",
    "Constraint",
    "ConstraintType",
    "Line",
    "Point",
    "Ref",
    "Sketch",
    "SketchTokens",
    "decode_sketch",
    "encode_sketch",
    "load_sketch",
    "max_residual",
    "normalize_sketch",
    "quantize_sketch",
    "residual",
    "residuals",
    "save_sketch",
    "transform_sketch",
]
