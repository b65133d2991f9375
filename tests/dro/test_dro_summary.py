"""``quintet dro summarize``: one table over finished training runs."""

import json

import pytest
from typer.testing import CliRunner

from quintet.core.errors import QuintetError
from quintet.dro.summary import summarize_runs, summary_markdown


def _run(folder, method, seed, worst, acc, epoch=1, **config):
    folder.mkdir(parents=True)
    cfg = {"task": "biased-sst", "method": method, "seed": seed, "epochs": 2, "model_size": "authors", **config}
    sel = {rule: {"epoch": epoch, "test_worst": worst, "test_acc": acc} for rule in ("minmax", "average")}
    (folder / "results.json").write_text(json.dumps({"config": cfg, "metrics": {"selection": sel, "history": [{}, {}]}}))
    return folder


def test_mean_and_std_over_seeds_per_method_and_rule(tmp_path):
    runs = [_run(tmp_path / "a", "ratio", 0, 0.6, 0.7), _run(tmp_path / "b", "ratio", 1, 0.4, 0.8, epoch=2),
            _run(tmp_path / "c", "erm", 0, 0.2, 0.65)]
    s = summarize_runs(runs)
    ratio = s["methods"]["ratio"]["minmax"]
    assert ratio["seeds"] == [0, 1] and ratio["epochs"] == [1, 2]
    assert ratio["worst_mean"] == pytest.approx(0.5) and ratio["worst_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert ratio["acc_mean"] == pytest.approx(0.75)
    assert s["methods"]["erm"]["average"]["worst_std"] == 0.0
    md = summary_markdown(s, "t")
    assert "| ratio | minmax | 0, 1 | 1, 2 | 0.500 ± 0.141 | 0.600, 0.400 | 0.750 ± 0.071 |" in md


def test_runs_of_other_settings_or_folders_without_results_are_refused(tmp_path):
    a = _run(tmp_path / "a", "ratio", 0, 0.6, 0.7)
    b = _run(tmp_path / "b", "erm", 0, 0.2, 0.6, model_size="small")
    with pytest.raises(QuintetError, match="differs .* in model_size"):
        summarize_runs([a, b])
    newer = _run(tmp_path / "newer", "erm", 1, 0.3, 0.6, tokens="words")   # records a setting `a` predates
    assert summarize_runs([a, newer])["methods"]["erm"]["minmax"]["seeds"] == [1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuintetError, match="no results.json"):
        summarize_runs([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("[1, 2]")
    with pytest.raises(QuintetError, match="not the results"):
        summarize_runs([tmp_path / "bad"])


def test_cli_writes_results_and_exits_2_on_bad_input(tmp_path):
    from quintet.cli import app, main

    a = _run(tmp_path / "a", "ratio", 0, 0.6, 0.7)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["dro", "summarize", str(a), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "results.json").read_text())["metrics"]["methods"]["ratio"]["minmax"]["worst"] == [0.6]
    assert (out / "results.md").read_text().startswith("# dro: runs side by side")
    (tmp_path / "empty").mkdir()
    assert main(["dro", "summarize", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert main(["dro", "summarize", str(tmp_path / "missing"), "--out", str(out)]) == 2
