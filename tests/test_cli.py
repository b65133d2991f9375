"""The top-level command: help, version, data check, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys

from quintet import __version__
from quintet.cli import main


def _run(*args: str, env_data=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quintet.cli", *args], capture_output=True, text=True)


def test_help_lists_commands():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("demo", "reproduce", "data"):
        assert command in result.stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"quintet {__version__}"


def test_bad_option_is_one_line_and_exit_2():
    result = _run("--no-such-option")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "No such option: --no-such-option" in result.stderr and "Traceback" not in result.stderr


def test_unknown_method_for_reproduce(capsys):
    assert main(["reproduce", "alchemy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quintet: error: unknown method 'alchemy'") and err.count("\n") == 1


def test_data_check_reports_every_file(data_dir, capsys):
    assert main(["--data-dir", str(data_dir), "data", "check"]) == 0
    out = capsys.readouterr().out
    assert "camvid_small.npz" in out and "MISMATCH" not in out and "missing" not in out
    assert out.count(" ok ") + out.count("│ ok") >= 100


def test_data_check_on_empty_root(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "data", "check", "--no-verify"]) == 2
    captured = capsys.readouterr()
    assert "missing" in captured.out
    assert captured.err.startswith("quintet: error: no data set found under the data root") and captured.err.count("\n") == 1


def test_data_check_on_a_root_that_does_not_exist(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "nowhere"), "data", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quintet: error: data root") and "nowhere" in err and err.count("\n") == 1


def test_data_check_fails_on_a_checksum_mismatch(tmp_path, monkeypatch, capsys):
    from quintet.datasets import registry

    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    monkeypatch.setattr(registry, "recorded_sums", lambda: {"mnist/t10k-labels-idx1-ubyte.gz": "0" * 64})
    assert main(["--data-dir", str(tmp_path), "data", "check"]) == 1
    captured = capsys.readouterr()
    assert "CHECKSUM MISMATCH" in captured.out
    assert "1 file(s) do not match" in captured.err and "t10k-labels-idx1-ubyte.gz" in captured.err


def test_output_path_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    result = _run("demo", "--out", str(target), "--only", "sorting")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("quintet: error:") and result.stderr.strip().count("\n") == 0


def test_demo_collects_each_method_section(tmp_path, monkeypatch, capsys):
    import types

    from quintet import cli

    def fake_demo(run):
        (run.path / "fake_plot.png").write_bytes(b"\x89PNG")
        return "## fake\n\nmeasured 42\n"

    fake = types.SimpleNamespace(demo=fake_demo)
    monkeypatch.setattr(cli, "_available", lambda: {"fake": fake})
    assert main(["demo", "--out", str(tmp_path)]) == 0
    (report_dir,) = tmp_path.iterdir()
    report = (report_dir / "results.md").read_text()
    assert "## fake" in report and "measured 42" in report
    assert (report_dir / "fake_plot.png").is_file()
    assert main(["demo", "--out", str(tmp_path), "--only", "nothing"]) == 2
