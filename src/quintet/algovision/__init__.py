"""Relaxed control flow for algorithmic supervision (Petersen et al., "Learning with Algorithmic
Supervision via Continuous Relaxations", NeurIPS 2021, arXiv 2110.05651).

Write an algorithm with ordinary control flow; every comparison is perturbed by logistic noise of
scale ``1/beta`` and the program returns the closed-form expectation, a smooth function of its
inputs.  Programs for the authors' ``algovision`` package run unchanged:

>>> from quintet.algovision import Algorithm, Input, Output, Var, If, GT, Let
>>> relu = Algorithm(Input('x'), Var('y', torch.tensor(0.)),
...                  If(GT('x', 0.), if_true=Let('y', 'x')), Output('y'), beta=10.)
"""

from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.conditions import (
    GT,
    LT,
    And,
    CatProbEq,
    Condition,
    CosineSimilarity,
    Eq,
    GEq,
    IsFalse,
    IsTrue,
    LEq,
    NEq,
    Or,
)
from quintet.algovision.edit_distance import levenshtein, soft_edit_distance
from quintet.algovision.functional import index_weights, soft_if, soft_read, soft_while, soft_write
from quintet.algovision.functions import ArgMax, ArgMin, Max, Min
from quintet.algovision.program import Algorithm, Input, Output, Var, Variable, VariableInt, VarInt
from quintet.algovision.relaxations import (
    soft_and,
    soft_argmax,
    soft_argmin,
    soft_eq,
    soft_gt,
    soft_lt,
    soft_max,
    soft_min,
    soft_neq,
    soft_not,
    soft_or,
)
from quintet.algovision.shortest_path import dijkstra, relaxed_shortest_path
from quintet.algovision.statements import (
    For,
    If,
    Let,
    LetInt,
    MaxIterationsWarning,
    Print,
    Statement,
    While,
)

__all__ = [
    "Algorithm", "And", "ArgMax", "ArgMin", "CatProbEq", "Condition", "CosineSimilarity", "Eq", "For", "GEq", "GT",
    "If", "Input", "IsFalse", "IsTrue", "LEq", "LT", "Let", "LetInt", "Max", "MaxIterationsWarning", "Min", "NEq",
    "Or", "Output", "Print", "Statement", "Var", "VarInt", "Variable", "VariableInt", "While",
    "soft_and", "soft_argmax", "soft_argmin", "soft_eq", "soft_gt", "soft_lt", "soft_max", "soft_min", "soft_neq",
    "soft_not", "soft_or", "soft_if", "soft_while", "soft_read", "soft_write", "index_weights",
    "relaxed_bubble_sort", "relaxed_shortest_path", "dijkstra", "soft_edit_distance", "levenshtein",
]
