"""CamVid domains and the ``quintet segment`` commands (need the data root)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from quintet.cli import main


def test_camvid_domains(data_dir, monkeypatch):
    monkeypatch.setenv("QUINTET_DATA", str(data_dir))
    from quintet.segmentation.data import camvid_domains

    d = camvid_domains()
    assert {k: len(v) for k, v in d.items()} == {"0001TP": 124, "0006R0": 101, "0016E5": 305, "Seq05VD": 171}
    for dom in d.values():
        assert dom.images.shape[1:] == (90, 120, 3)
        assert set(np.unique(dom.labels)) <= set(range(11)) | {255}
        assert all(n.startswith(dom.name) for n in dom.names)
    assert (d["0001TP"].labels == 255).any()  # void mapped to ignore


def test_segment_train_evaluate_predict(data_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QUINTET_DATA", str(data_dir))
    out = tmp_path / "run"
    args = ["segment", "train", "--method", "pinmem", "--steps", "2", "--batch", "2", "--width", "4",
            "--targets", "Seq05VD", "--out", str(out), "--checkpoint-every", "1"]
    assert main(args) == 0
    assert (out / "checkpoints" / "latest").is_file() and (out / "results.json").is_file()
    assert main(args) == 0  # resumes at step 2: nothing left to train
    assert "resumed from" in capsys.readouterr().out
    assert main(["segment", "evaluate", str(out / "checkpoints"), "--targets", "0006R0"]) == 0
    assert "0006R0" in capsys.readouterr().out

    img = tmp_path / "frame.png"
    Image.fromarray(np.full((90, 120, 3), 120, np.uint8)).save(img)
    assert main(["segment", "predict", str(img), "-c", str(out / "checkpoints")]) == 0
    assert np.asarray(Image.open(tmp_path / "frame.seg.png")).shape == (90, 120, 3)

    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((180, 240, 3), np.uint8)).save(big)
    assert main(["segment", "predict", str(big), "-c", str(out / "checkpoints")]) == 2
    assert "expects 120x90" in capsys.readouterr().err
    assert main(["segment", "predict", str(big), "-c", str(out / "checkpoints"), "--resize"]) == 0
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((90, 120), np.uint8)).save(grey)
    assert main(["segment", "predict", str(grey), "-c", str(out / "checkpoints")]) == 2
    assert "expected an RGB image" in capsys.readouterr().err
    assert main(["segment", "train", "--method", "dann", "--out", str(tmp_path / "x")]) == 2
    assert "Invalid value for '--method': Value error, 'dann' is not one of" in capsys.readouterr().err
    assert main(["segment", "train", "--sources", "0006R0,nope", "--out", str(tmp_path / "y")]) == 2
    assert "unknown CamVid sequence 'nope'" in capsys.readouterr().err
    assert main(["segment", "train", "--batch", "1", "--out", str(tmp_path / "z")]) == 2
    assert "Invalid value for '--batch': Input should be greater than or equal to 2" in capsys.readouterr().err


def test_reproduce_finished_only_trains_nothing_and_needs_the_convergence_study(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("QUINTET_DATA", str(data_dir))
    assert main(["reproduce", "segmentation", "--quick", "--finished-only", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.rglob("*.json"))  # refused before any run or report


def test_finished_only_applies_to_segmentation_alone(tmp_path):
    assert main(["reproduce", "sorting", "--finished-only", "--out", str(tmp_path)]) == 2
