"""Differentiable logic gate networks (Petersen et al., NeurIPS 2022, arXiv 2210.08277): relaxed
two-input gates trained by gradient descent, discretised into a logic circuit that runs
bit-parallel in C or NumPy and exports to C and Verilog.

>>> from quintet.logic import logic_network, CompiledLogicNet
>>> model = logic_network(in_dim=784, width=8000, depth=6, classes=10, tau=10.0)
>>> ...  # train with any optimiser; model.eval() is the discrete network
>>> CompiledLogicNet.from_model(model).predict(x_bool)
"""

from quintet.logic.compiled import CompiledLogicNet, c_source, export_c
from quintet.logic.conv import ConvLogicTree, OrPool, conv_logic_network
from quintet.logic.functional import group_sum, logic_layer, neuron_coefficients
from quintet.logic.gates import (
    GATE_NAMES,
    gate_coefficients,
    gate_mixture,
    relaxed_gate,
    truth_tables,
)
from quintet.logic.layers import GroupSum, LogicLayer, init_logits, logic_network
from quintet.logic.netlist import GateNetwork, class_counts_numpy, discretize
from quintet.logic.train import TrainConfig, load_model, train
from quintet.logic.verilog import export_verilog, simulate_verilog, verilog_source
from quintet.logic.wiring import make_wiring

__all__ = [
    "CompiledLogicNet",
    "ConvLogicTree",
    "GATE_NAMES",
    "GateNetwork",
    "GroupSum",
    "LogicLayer",
    "OrPool",
    "TrainConfig",
    "c_source",
    "class_counts_numpy",
    "conv_logic_network",
    "discretize",
    "export_c",
    "export_verilog",
    "gate_coefficients",
    "gate_mixture",
    "group_sum",
    "init_logits",
    "load_model",
    "logic_layer",
    "logic_network",
    "make_wiring",
    "neuron_coefficients",
    "relaxed_gate",
    "simulate_verilog",
    "train",
    "truth_tables",
    "verilog_source",
]
