"""The command line (errors → one line, exit 2) and short runs of the pose and shape fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quintet.cli import main
from quintet.core.errors import QuintetError
from quintet.render import GenDR, RenderSettings, render
from quintet.render.experiments import PoseConfig, ShapeConfig, fit_pose, fit_shape, ring_cameras


@pytest.mark.parametrize("args,message", [
    (["--dist", "normal"], "unknown distribution 'normal'"),
    (["--tconorm", "sum"], "unknown T-conorm 'sum'"),
    (["--tau", "0"], "tau must be a finite number > 0"),
    (["--tau", "-0.5"], "tau must be a finite number > 0"),
    (["--tconorm", "yager", "--p", "-1"], "yager T-conorm needs a parameter p > 0"),
    (["--tconorm", "frank", "--p", "1"], "p > 0 and p != 1"),
])
def test_show_bad_options(data_dir, tmp_path, capsys, args, message):
    code = main(["render", "show", str(data_dir / "meshes" / "teapot.obj"), "--out", str(tmp_path / "x.png"),
                 "--size", "16", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_show_bad_meshes(tmp_path, capsys):
    empty = tmp_path / "empty.obj"
    empty.write_text("v 0 0 0\n")
    nan = tmp_path / "nan.obj"
    nan.write_text("v 0 0 0\nv nan 1 0\nv 1 0 0\nf 1 2 3\n")
    for path, message in ((empty, "no faces"), (nan, "NaN"), (tmp_path / "nope.obj", "not found")):
        assert main(["render", "show", str(path), "--out", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err


def test_show_writes_png(data_dir, tmp_path, capsys):
    out = tmp_path / "teapot.png"
    code = main(["render", "show", str(data_dir / "meshes" / "teapot.obj"), "--out", str(out), "--size", "32",
                 "--dist", "gaussian", "--tconorm", "einstein"])
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2464 faces" in capsys.readouterr().out


def test_module_matches_function(teapot_screen):
    module = GenDR(image_size=24, dist="uniform", tau=0.005, squared=False, tconorm="yager", p=2.0, blend="none")
    torch.testing.assert_close(module(teapot_screen), render(teapot_screen, module.settings))
    module.set_tau(0.05)
    assert module.settings.tau == 0.05
    with pytest.raises(QuintetError):
        module.set_tau(0.0)


@pytest.mark.slow
def test_pose_fit_reduces_error_from_close_start(teapot):
    cfg = PoseConfig(dist="logistic", poses=2, steps=40, image_size=24, lr=0.5, angle_min=8, angle_max=10,
                     tau_start=1e-3, tau_end=1e-5)
    result = fit_pose(teapot, cfg)
    assert np.mean(result["final_error_deg"]) < np.mean(result["initial_error_deg"])
    assert result["goal"].shape == (24, 24) and set(result["goal"].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.slow
def test_shape_fit_improves_iou(data_dir):
    from quintet.render.mesh import load_mesh

    template = load_mesh(data_dir / "meshes" / "sphere_642.obj")
    target = load_mesh(data_dir / "meshes" / "airplane.obj")
    cameras = ring_cameras(np.load(data_dir / "meshes" / "cameras.npy"), 30.0)[::6]
    start = fit_shape(template, target, cameras, ShapeConfig(steps=1, image_size=24, tau=1e-3, squared=True))
    longer = fit_shape(template, target, cameras, ShapeConfig(steps=15, image_size=24, tau=1e-3, squared=True))
    assert longer["iou"] > start["iou"] + 0.02
    with pytest.raises(QuintetError, match="elevation"):
        ring_cameras(np.load(data_dir / "meshes" / "cameras.npy"), 45.0)


def test_config_checks():
    with pytest.raises(QuintetError):
        PoseConfig(poses=0)
    with pytest.raises(QuintetError):
        PoseConfig(angle_min=50, angle_max=20)
    with pytest.raises(QuintetError):
        ShapeConfig(dist="nope")
    with pytest.raises(QuintetError):
        RenderSettings(near=2.0, far=1.0)
