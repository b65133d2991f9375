"""Guards behind the command line: configuration checked before weights, damaged checkpoint files,
memory estimates, method-name aliases, the data root beside the clone, pickled weights refused,
and an exact resume of the fact LM."""

from __future__ import annotations

import json

import pytest
import torch

from quintet.cli import _method_title, main
from quintet.core.errors import QuintetError
from quintet.core.io import check_checkpoint, load_checkpoint, save_checkpoint
from quintet.core.memory import GIB, check_memory


def _model(width: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, width)


def test_other_configuration_is_refused_before_any_weight_is_loaded(tmp_path):
    save_checkpoint(tmp_path, _model(), step=1, config={"train": {"method": "pinmem", "lr": 0.1}})
    model = _model()
    torch.nn.init.zeros_(model.weight)
    with pytest.raises(QuintetError, match=r"train\.method: 'pinmem' -> 'erm'") as info:
        load_checkpoint(tmp_path, model, expected_config={"train": {"method": "erm", "lr": 0.1}})
    assert "\n" not in str(info.value)
    assert torch.count_nonzero(model.weight) == 0  # untouched
    state = load_checkpoint(tmp_path, model, expected_config={"train": {"method": "erm"}}, ignore=("method",))
    assert state["step"] == 1 and torch.equal(model.weight, _model().weight)


def test_other_sizes_are_one_line_counting_the_mismatches(tmp_path):
    save_checkpoint(tmp_path, _model(3), step=1)
    with pytest.raises(QuintetError, match=r"2 differently shaped tensors \(weight: saved \(3, 2\), model \(5, 2\)\)"):
        load_checkpoint(tmp_path, _model(5))


@pytest.mark.parametrize("name", ["trainer_state.json", "config.json", "model.safetensors", "optimizer.safetensors"])
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_checkpoint_files_are_named(tmp_path, name, how):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    target = save_checkpoint(tmp_path, model, step=1, config={"a": 1}, optimizer=opt)
    data = (target / name).read_bytes()
    (target / name).write_bytes(data[: len(data) // 2] if how == "truncated" else b"\x00\xff" * 40)
    with pytest.raises(QuintetError, match=name.replace(".", r"\.")):
        check_checkpoint(tmp_path)


def test_memory_guard_names_the_estimate():
    with pytest.raises(QuintetError, match=r"needs about 4\.0 GiB, more than the 1\.0 GiB --max-memory"):
        check_memory(4 * GIB, "the run", max_memory_gb=1.0)
    check_memory(GIB // 2, "the run", max_memory_gb=1.0)


def test_dro_refuses_a_synthetic_split_larger_than_the_memory_allows(tmp_path, capsys):
    args = ["dro", "train", "--task", "synthetic", "--n-train", "9000000", "--max-memory", "0.5",
            "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("quintet: error: --n-train 9000000 synthetic examples needs about 2.1 GiB")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,title", [("sort", "sorting"), ("sorting", "sorting"), ("segment", "segmentation"),
                                        ("segmentation", "segmentation"), ("dro", "dro")])
def test_commands_and_method_names_are_both_accepted(name, title):
    assert _method_title(name, "--only") == title


def test_method_name_mounts_the_same_sub_app(capsys):
    assert main(["segmentation", "train", "--width", "0"]) == 2
    assert "Invalid value for '--width'" in capsys.readouterr().err
    assert main(["sorting", "--help"]) == 0
    assert "train-ranking" in capsys.readouterr().out
    with pytest.raises(QuintetError, match="expected one of: .*segment, segmentation.*sort, sorting.*all"):
        _method_title("alchemy", "reproduce", extra=("all",))


def test_data_root_beside_the_clone(tmp_path, monkeypatch):
    from quintet.datasets import registry

    monkeypatch.delenv("QUINTET_DATA", raising=False)
    monkeypatch.setattr(registry, "BESIDE_CLONE", tmp_path)
    assert registry.data_root() == tmp_path
    monkeypatch.setattr(registry, "BESIDE_CLONE", tmp_path / "absent")
    assert registry.data_root() == registry.DEFAULT_ROOT.expanduser()
    monkeypatch.setenv("QUINTET_DATA", str(tmp_path / "env"))
    assert registry.data_root() == tmp_path / "env"


def test_pickled_weights_are_refused_with_a_conversion_hint(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    code = main(["knowledge", "attribute", "--model", str(tmp_path), "--prompt", "a [MASK] .", "--answer", "b"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "pytorch_model.bin" in err and "convert it to safetensors" in err and "weights_only" not in err


def test_heatmap_folder_is_never_created(tmp_path, capsys):
    target = tmp_path / "absent" / "deeper" / "k.png"
    code = main(["knowledge", "attribute", "--model", str(tmp_path), "--prompt", "a [MASK] .", "--answer", "b",
                 "--heatmap", str(target)])
    assert code == 2 and "does not exist (it is not created)" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()


@pytest.mark.slow
def test_fact_lm_resumed_after_an_interruption_equals_an_uninterrupted_run(data_dir, tmp_path):
    from quintet.core.io import load_tensors
    from quintet.knowledge.factlm import FactLMConfig, train_factlm

    cfg = FactLMConfig(facts_per_relation=2, vocab_size=300, hidden_size=16, num_layers=1, num_heads=2,
                       intermediate_size=32, epochs=3, batch_size=32, target_accuracy=2.0, seed=3)
    run = tmp_path / "run"
    train_factlm(run, cfg, data_dir=data_dir, log=lambda _: None)
    straight = load_tensors(run / "model.safetensors")
    # as if the process had died right after epoch 2's checkpoint (the vocabulary built before stays)
    (run / "checkpoints" / "latest").write_text("checkpoint-00000002\n")
    (run / "model.safetensors").unlink()
    messages = []
    train_factlm(run, cfg, data_dir=data_dir, log=messages.append)
    assert any("resumed from epoch 2" in m for m in messages)
    resumed = load_tensors(run / "model.safetensors")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
