"""``quintet logic`` end to end: train, resume, compile, export, and one-line errors."""

from __future__ import annotations

import json

import pytest

from quintet.cli import main


def test_unknown_names_exit_2(capsys):
    assert main(["logic", "train", "--dataset", "iris"]) == 2
    assert "unknown data set 'iris'" in capsys.readouterr().err
    assert main(["logic", "train", "--connections", "ring"]) == 2
    assert "unknown wiring scheme 'ring'" in capsys.readouterr().err
    assert main(["logic", "train", "--width", "0"]) == 2
    assert main(["logic", "train", "--arch", "conv", "--dataset", "monk1"]) == 2
    assert "conv architecture takes 28x28 images" in capsys.readouterr().err
    assert main(["logic", "train", "--channels", "a,b"]) == 2
    assert "--channels must be two comma-separated integers" in capsys.readouterr().err


def test_missing_checkpoint_exit_2(tmp_path, capsys):
    assert main(["logic", "compile", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_train_compile_export(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    args = ["logic", "train", "--dataset", "monk1", "--width", "24", "--depth", "2", "--steps", "60",
            "--eval-every", "30", "--out", str(run)]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["steps"] == 60 and first["gates"] == 48
    assert main(args[:-4] + ["--steps", "90", "--eval-every", "30", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resumed from step 60" in out
    assert main(["logic", "compile", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["equals_torch"] is True and report["gates"] == 48
    assert main(["logic", "export", str(run), "--out", str(tmp_path / "net.c")]) == 0
    assert main(["logic", "export", str(run), "--format", "verilog", "--out", str(tmp_path / "net.v")]) == 0
    assert "module logic_gate_net" in (tmp_path / "net.v").read_text()
    assert main(["logic", "export", str(run), "--format", "vhdl", "--out", str(tmp_path / "x.vhd")]) == 2
    assert not (tmp_path / "x.vhd").exists()
    wrong = args[:-4] + ["--width", "30", "--steps", "100", "--out", str(run)]
    assert main(wrong) == 2
    assert "another architecture" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_section(tmp_path, monkeypatch):
    from quintet.core.runs import Run
    from quintet.logic.cli import demo

    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path / "cache"))
    run = Run(tmp_path / "demo")
    text = demo(run)
    assert text.startswith("## logic") and "| True |" in text
    assert "module logic_gate_net" in (run.path / "logic_monk1.v").read_text()
    assert "lgn_class_counts" in (run.path / "logic_monk1.c").read_text()
