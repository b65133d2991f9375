"""Verilog export, simulated with Icarus Verilog against the Python model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.logic.layers import logic_network
from quintet.logic.netlist import GateNetwork
from quintet.logic.verilog import export_verilog, simulate_verilog, verilog_source

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed (make installs it)")


@needs_iverilog
def test_simulation_equals_python_model_on_random_inputs():
    model = logic_network(19, 30, 3, 3, tau=2.0, seed=3).eval()
    x = np.random.default_rng(0).integers(0, 2, (40, 19)).astype(np.uint8)
    counts = simulate_verilog(GateNetwork.from_model(model), x)
    with torch.no_grad():
        expected = (model(torch.from_numpy(x).float()) * 2).round().int().numpy()
    assert np.array_equal(counts, expected)


@needs_iverilog
@pytest.mark.slow
def test_simulation_on_real_monk_test_inputs(data_dir):
    from quintet.logic.data import load_binary
    from quintet.logic.train import TrainConfig, train

    data = load_binary("monk1", data_dir)
    res = train(TrainConfig(dataset="monk1", width=24, depth=2, steps=200, eval_every=200), data, log=lambda s: None)
    model = res["model"].eval()
    counts = simulate_verilog(GateNetwork.from_model(model), data.x_test)
    with torch.no_grad():
        expected = model(torch.from_numpy(data.x_test).float()).round().int().numpy()
    assert counts.shape == (432, 2) and np.array_equal(counts, expected)


def test_module_text(tmp_path):
    model = logic_network(4, 4, 1, 2, seed=0)
    src = verilog_source(GateNetwork.from_model(model), "tiny")
    assert src.startswith("//") and "module tiny (" in src and src.rstrip().endswith("endmodule")
    assert src.count("assign l1[") == 4
    path = export_verilog(model, tmp_path / "tiny.v", "tiny")
    assert path.read_text() == src
    with pytest.raises(QuintetError, match="identifier"):
        verilog_source(GateNetwork.from_model(model), "bad name")
