"""Bit-parallel inference (C and NumPy), C export: identical to the discretised PyTorch model."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from quintet.core.errors import QuintetError
from quintet.logic.compiled import CompiledLogicNet, c_source, export_c, layout
from quintet.logic.conv import conv_logic_network
from quintet.logic.layers import logic_network
from quintet.logic.netlist import GateLayer, GateNetwork, class_counts_numpy, pack_bits

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _torch_counts(model, x):
    with torch.no_grad():
        return (model.eval()(torch.from_numpy(x).float()) * model[-1].tau).round().int().numpy()


# in_dim not a multiple of 8; groups below 16, of 16 + remainder, and of 12 x 16 + 8 (adder tree + counters)
@pytest.mark.parametrize("in_dim, width, depth, classes",
                         [(37, 60, 3, 3), (64, 130, 2, 10), (17, 24, 4, 2), (50, 400, 2, 2)])
@needs_cc
def test_c_and_numpy_equal_torch_for_every_batch_size(in_dim, width, depth, classes):
    model = logic_network(in_dim, width, depth, classes, tau=3.0, seed=in_dim).eval()
    net = CompiledLogicNet.from_model(model, backend="c")
    rng = np.random.default_rng(0)
    for n in (1, 7, 31, 63, 64, 65, 512, 513, 1100):
        x = rng.integers(0, 2, (n, in_dim)).astype(np.uint8)
        expected = _torch_counts(model, x)
        assert np.array_equal(net.class_counts(x), expected), n
        assert np.array_equal(class_counts_numpy(net.net, x), expected), n
        assert np.array_equal(net.predict(x.astype(bool)), expected.argmax(1))
    assert torch.allclose(net(x), model(torch.from_numpy(x).float()))


@needs_cc
def test_compiled_library_is_cached_by_netlist():
    model = logic_network(20, 30, 2, 3, seed=5)
    first = CompiledLogicNet.from_model(model, backend="c")
    second = CompiledLogicNet.from_model(model, backend="c")
    assert first.compile_seconds > 0 and second.compile_seconds == 0.0
    assert CompiledLogicNet.from_model(model, backend="c", use_cache=False).compile_seconds > 0


@needs_cc
def test_calls_from_several_threads_each_get_their_counts():
    model = logic_network(40, 400, 3, 4, seed=9).eval()
    net = CompiledLogicNet.from_model(model, backend="c")
    xs = [np.random.default_rng(i).integers(0, 2, (3000, 40)).astype(np.uint8) for i in range(4)] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(net.class_counts, xs))
    assert all(np.array_equal(counts, _torch_counts(model, x)) for x, counts in zip(xs, results))


def test_numpy_backend_needs_no_compiler():
    model = logic_network(20, 30, 2, 3, seed=6).eval()
    net = CompiledLogicNet.from_model(model, backend="numpy")
    x = np.random.default_rng(1).integers(0, 2, (70, 20)).astype(np.uint8)
    assert net.backend == "numpy" and np.array_equal(net.class_counts(x), _torch_counts(model, x))


def test_pack_bits_layout():
    x = np.zeros((70, 3), dtype=np.uint8)
    x[0, 0] = x[65, 1] = x[63, 2] = 1
    packed = pack_bits(x)
    assert packed.shape == (3, 2)
    assert packed[0, 0] == 1 and packed[1, 1] == 2 and packed[2, 0] == np.uint64(1) << np.uint64(63)


@needs_cc
def test_standalone_c_export_compiles_and_agrees(tmp_path):
    model = logic_network(24, 40, 3, 4, tau=2.0, seed=7).eval()
    path = export_c(model, tmp_path / "net.c")
    x = np.random.default_rng(2).integers(0, 2, (45, 24)).astype(np.uint8)
    rows = ",".join(map(str, x.ravel().tolist()))
    (tmp_path / "main.c").write_text(
        "#include <stdio.h>\n#include <stdint.h>\n#include <stddef.h>\n"
        "int lgn_class_counts(const uint8_t *x, size_t n, int32_t *counts);\n"
        f"static const uint8_t X[] = {{{rows}}};\n"
        "int main(void) { int32_t c[45 * 4]; lgn_class_counts(X, 45, c);\n"
        "  for (int i = 0; i < 45 * 4; ++i) printf(\"%d\\n\", c[i]); return 0; }\n")
    compiler = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([compiler, "-std=c99", "-O1", "-o", str(tmp_path / "run"), str(tmp_path / "main.c"), str(path)],
                   check=True)
    out = subprocess.run([str(tmp_path / "run")], capture_output=True, text=True, check=True).stdout
    counts = np.array(out.split(), dtype=np.int32).reshape(45, 4)
    assert np.array_equal(counts, _torch_counts(model, x))
    assert GateNetwork.from_model(model).digest() in path.read_text()


def _netlist(in_dim: int, layers: list, classes: int) -> GateNetwork:
    return GateNetwork(in_dim, tuple(GateLayer(np.array(a, np.int32), np.array(b, np.int32), np.array(ops, np.uint8))
                                     for a, b, ops in layers), classes)


def test_layout_drops_unread_gates_and_orders_runs():
    # layer 2 reads gate 0 through "a" (id 3), gate 1 through "not b" (id 10), and nothing else (ids 0, 15)
    net = _netlist(3, [([0, 1, 2, 0], [1, 2, 0, 2], [6, 1, 7, 14]), ([0, 2, 3, 3], [2, 1, 3, 3], [3, 10, 0, 15])], 2)
    lay = layout(net)
    assert lay.widths == (2, 4)
    assert lay.run_op.tolist() == [1, 6, 3, 10, 0, 15]  # layer 1 by gate id; layer 2 by class, then id
    assert lay.layer_runs.tolist() == [0, 2, 6] and lay.run_end.tolist() == [1, 2, 3, 4, 5, 6]
    assert lay.src_a[:2].tolist() == [1, 0] and lay.src_b[:2].tolist() == [2, 1]
    assert lay.src_a[2] == 1 and lay.src_b[3] == 0  # "a" reads old gate 0, "not b" old gate 1, renumbered
    assert "(6 evaluated" in c_source(net)


@needs_cc
def test_c_counts_with_dead_and_constant_layers():
    x = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.uint8)
    live = _netlist(3, [([0, 1, 2, 0], [1, 2, 0, 2], [6, 1, 7, 14]), ([0, 2, 3, 3], [2, 1, 3, 3], [3, 10, 0, 15])], 2)
    dead = _netlist(3, [([0, 1], [1, 2], [6, 1]), ([0, 1], [1, 0], [15, 0])], 1)  # no gate of layer 1 is read
    assert layout(dead).widths == (0, 2)
    expected = np.stack([(x[:, 0] ^ x[:, 1]) + 1 - (x[:, 1] & x[:, 2]), np.ones(8, np.int32)], 1)
    assert np.array_equal(CompiledLogicNet(live, backend="c").class_counts(x), expected)
    assert np.array_equal(class_counts_numpy(live, x), expected)
    assert np.array_equal(CompiledLogicNet(dead, backend="c").class_counts(x), np.ones((8, 1), np.int32))


@needs_cc
@pytest.mark.parametrize("in_dim", [37, 64])
def test_c_backend_rejects_bytes_other_than_0_and_1(in_dim):
    net = CompiledLogicNet.from_model(logic_network(in_dim, 45, 2, 3, seed=1), backend="c")
    for n, row, col, value in [(1, 0, 0, 2), (600, 599, in_dim - 1, 255), (600, 300, 5, 3), (64, 63, in_dim - 1, 2)]:
        x = np.zeros((n, in_dim), dtype=np.uint8)
        x[row, col] = value
        with pytest.raises(QuintetError, match=f"binary input.*value {value}"):
            net.class_counts(x)
        x[row, col] = 1
        assert net.class_counts(x).shape == (n, 3)


def test_bad_inputs_raise_one_clear_error():
    model = logic_network(10, 20, 2, 2, seed=0)
    net = CompiledLogicNet.from_model(model, backend="numpy")
    with pytest.raises(QuintetError, match=r"shape \(N, 10\)"):
        net.class_counts(np.zeros((3, 11), dtype=np.uint8))
    with pytest.raises(QuintetError, match="binary input.*0.5"):
        net.class_counts(np.full((3, 10), 0.5))
    with pytest.raises(QuintetError, match="backend"):
        CompiledLogicNet.from_model(model, backend="fpga")
    with pytest.raises(QuintetError, match="cannot compile a ConvLogicTree"):
        GateNetwork.from_model(conv_logic_network(channels=(2, 2), width=100, seed=0))


def test_empty_batch():
    net = CompiledLogicNet.from_model(logic_network(10, 20, 2, 2, seed=0))
    assert net.class_counts(np.zeros((0, 10), dtype=np.uint8)).shape == (0, 2)


def test_c_source_mentions_sizes():
    src = c_source(GateNetwork.from_model(logic_network(10, 20, 2, 2, seed=0)))
    assert "#define LGN_INPUTS 10" in src and "#define LGN_CLASSES 2" in src and "40 gates" in src


def test_discretize_reads_argmax_gates_and_wiring():
    from quintet.logic import discretize

    model = logic_network(10, 20, 2, 2, seed=3)
    net = discretize(model)
    assert net.gate_count == 40 and net.classes == 2 and net.in_dim == 10
    assert np.array_equal(net.layers[0].ops, model[0].weights.argmax(-1).numpy())
    assert np.array_equal(net.layers[1].src_a, model[1].idx_a.numpy())
