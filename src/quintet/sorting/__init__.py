"""Differentiable sorting networks (Petersen et al., ICML 2021; monotonic relaxations, ICLR 2022;
top-k, ICML 2022) and ranking supervision.

>>> from quintet.sorting import diffsort, ranking_loss
>>> sorted_x, P = diffsort(x, network="bitonic", relaxation="cauchy", steepness=10.0)
"""

from quintet.sorting.functional import diff_topk, diffsort, soft_rank, soft_sort
from quintet.sorting.losses import permutation_from_ranks, ranking_loss, ranks_from_scores
from quintet.sorting.modules import DiffSortNet
from quintet.sorting.networks import SortingNetwork, bitonic_network, get_network, odd_even_network
from quintet.sorting.relaxations import MONOTONIC, RELAXATIONS, relaxation_names, swap_probability

__all__ = [
    "DiffSortNet",
    "MONOTONIC",
    "RELAXATIONS",
    "SortingNetwork",
    "bitonic_network",
    "diff_topk",
    "diffsort",
    "get_network",
    "odd_even_network",
    "permutation_from_ranks",
    "ranking_loss",
    "ranks_from_scores",
    "relaxation_names",
    "soft_rank",
    "soft_sort",
    "swap_probability",
]
