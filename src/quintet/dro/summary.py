"""``quintet dro summarize``: one table over finished ``quintet dro train`` runs (e.g. the same
methods at the authors' model size over several seeds), read from each run's ``results.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from quintet.core.errors import QuintetError
from quintet.dro.reproduce import _fmt, _mean_std

RULES = ("minmax", "greedy-minmax", "average", "oracle")


def read_run(folder: str | Path) -> dict[str, Any]:
    """The configuration and selections of one finished run folder (its ``results.json``)."""
    file = Path(folder) / "results.json"
    try:
        data = json.loads(file.read_text())
        config, metrics = data["config"], data["metrics"]
        selection, history = metrics["selection"], metrics["history"]
    except FileNotFoundError:
        raise QuintetError(f"{folder}: no results.json (not a finished `quintet dro train` run)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise QuintetError(f"{file}: not the results of a `quintet dro train` run ({e})") from None
    return {"folder": str(folder), "config": config, "selection": selection, "epochs": len(history)}


def summarize_runs(folders: Sequence[str | Path]) -> dict[str, Any]:
    """Per method and selection rule: test worst-group and average accuracy per seed, their mean
    and standard deviation; the runs must share every setting but method and seed (settings a run
    does not record, being older than them, are not compared)."""
    runs = [read_run(f) for f in folders]
    if not runs:
        raise QuintetError("give at least one run folder")
    shared = {k: v for k, v in runs[0]["config"].items() if k not in ("method", "seed", "epochs")}
    for r in runs[1:]:
        other = {k: v for k, v in r["config"].items() if k not in ("method", "seed", "epochs")}
        # a setting only one of the two records (a run made before it existed) is not compared
        differ = sorted(k for k in set(shared) & set(other) if shared[k] != other[k])
        if differ:
            raise QuintetError(f"{r['folder']} differs from {runs[0]['folder']} in {', '.join(differ)}")
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["config"]["method"], r["config"]["seed"])):
        for rule in RULES:
            pick = r["selection"].get(rule)
            if pick is None:
                continue
            entry = table.setdefault(r["config"]["method"], {}).setdefault(rule, {"seeds": [], "epochs": [],
                                                                                  "worst": [], "acc": []})
            entry["seeds"].append(r["config"]["seed"])
            entry["epochs"].append(pick["epoch"])
            entry["worst"].append(pick["test_worst"])
            entry["acc"].append(pick["test_acc"])
    for by_rule in table.values():
        for entry in by_rule.values():
            for key in ("worst", "acc"):
                stats = _mean_std(entry[key])
                entry[f"{key}_mean"], entry[f"{key}_std"] = stats["mean"], stats["std"]
    return {"settings": shared, "epochs": {r["folder"]: r["epochs"] for r in runs}, "methods": table}


def summary_markdown(summary: dict[str, Any], title: str = "dro: runs side by side") -> str:
    """The table of :func:`summarize_runs`, one row per method and rule."""
    from quintet.core.runs import markdown_table

    rows = []
    for method, by_rule in summary["methods"].items():
        for rule, e in by_rule.items():
            rows.append({"method": method, "selection": rule, "seeds": ", ".join(map(str, e["seeds"])),
                         "epoch picked": ", ".join(map(str, e["epochs"])),
                         "test worst-group": _fmt({"mean": e["worst_mean"], "std": e["worst_std"]}),
                         "per seed": ", ".join(f"{v:.3f}" for v in e["worst"]),
                         "test average": _fmt({"mean": e["acc_mean"], "std": e["acc_std"]})})
    s = summary["settings"]
    setting = ", ".join(f"{k} {s[k]}" for k in ("task", "model_size", "text_model", "recipe", "n_train", "batch_size",
                                                "lr", "adv_lr", "tau") if k in s)
    epochs = sorted(set(summary["epochs"].values()))
    return (f"# {title}\n\nRuns: {len(summary['epochs'])} ({setting}; epochs trained: "
            f"{', '.join(map(str, epochs))}). Test accuracy of the checkpoint each rule selects, mean ± std over "
            f"seeds; *worst-group* is the paper's robust accuracy.\n\n{markdown_table(rows)}")
