"""The documentation site builds with --strict, each guide's leading example runs on built-in data,
every public object has a docstring, and nothing speaks of how the project was built."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SUBPACKAGES = ("sorting", "logic", "render", "algovision", "knowledge", "sketch", "segmentation", "dro")
# Guides not written yet: the build stands in a placeholder while one is absent.
GUIDES_IN_PROGRESS: tuple[str, ...] = ()

# Wording about how the project was made rather than what it is, does or measured.
BUILD_PROCESS = re.compile(
    r"the issue|issue's|next issue|this workplace|stored corpora|stored cop(y|ies)|this environment"
    r"|(was|were) looked up|looked up in|loaded machine|heavier load|while writing this|\bsessions?\b"
    r"|the lead\b|the search returns|(pages|stored) corpus\b|could not be (read|checked|retrieved) here"
    r"|typed (in )?from memory|not available as text|at hand\b",
    re.IGNORECASE,
)
SCANNED = ("src", "results", "benchmarks", "docs", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".json", ".txt", ".yml", ".yaml", ".toml"}


def missing_parts() -> tuple[list[str], list[str]]:
    """Guides in progress that do not exist yet, and subpackages without an ``__init__.py``."""
    guides = [g for g in GUIDES_IN_PROGRESS if not (DOCS / f"{g}.md").is_file()]
    packages = [p for p in SUBPACKAGES if not (ROOT / "src" / "quintet" / p / "__init__.py").is_file()]
    return guides, packages


def site_config(tmp_path: Path) -> Path:
    """mkdocs.yml itself, or, while parts are missing, a copy of the site where each missing guide
    or API page is a placeholder (a warning names them)."""
    guides, packages = missing_parts()
    if not guides and not packages:
        return ROOT / "mkdocs.yml"
    warnings.warn(f"docs built with placeholders for guides {guides} and API pages {packages}", stacklevel=2)
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    for name in guides:
        (docs / f"{name}.md").write_text(f"# {name}\n\nPlaceholder.\n")
    for name in packages:
        (docs / "api" / f"{name}.md").write_text(f"# quintet.{name}\n\nPlaceholder.\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    config["hooks"] = [str(DOCS / "hooks.py")]
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT / "src")]
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_site_builds_strict_with_api_cli_and_results(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(site_config(tmp_path)), "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    api = (site / "api" / "dro" / "index.html").read_text()
    assert 'id="quintet.dro.ratio_dro_objectives"' in api and "paper Eq. 7" in api
    cli = (site / "cli" / "index.html").read_text()
    assert "quintet dro train" in cli and "--data-dir" in cli
    guide = (site / "dro" / "index.html").read_text()
    assert 'src="../results/dro/dro_weights.png"' in guide
    assert (site / "results" / "dro" / "dro_weights.png").is_file()


def leading_example(guide: Path) -> str | None:
    """The guide's first fenced block when it is Python and comes before the first section."""
    text = guide.read_text()
    first_section = text.find("\n## ")
    m = re.search(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    if not m or m.group(1) != "python" or (first_section != -1 and m.start() > first_section):
        return None
    return m.group(2)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPACKAGES)
def test_guide_starts_with_a_short_example_that_runs_on_built_in_data(name, tmp_path):
    guide = DOCS / f"{name}.md"
    in_progress = name in GUIDES_IN_PROGRESS
    if in_progress and not guide.is_file():
        pytest.skip(f"docs/{name}.md is not written yet")
    code = leading_example(guide)
    if in_progress and code is None:
        pytest.skip(f"docs/{name}.md has no leading example yet")
    assert code is not None, f"docs/{name}.md must start with a ```python example before its first section"
    lines = len(code.strip().splitlines())
    assert lines <= 15, f"docs/{name}.md: the leading example has {lines} lines, at most 15 expected"
    empty_root = tmp_path / "no-data"
    empty_root.mkdir()
    env = {**os.environ, "QUINTET_DATA": str(empty_root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("QUINTET_REQUIRE_DATA", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "the example prints what it computed"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_public_function_and_class_has_a_docstring(name):
    if not (ROOT / "src" / "quintet" / name / "__init__.py").is_file():
        pytest.skip(f"quintet.{name} does not exist yet")
    module = importlib.import_module(f"quintet.{name}")
    undocumented = [n for n in module.__all__
                    if (inspect.isfunction(obj := getattr(module, n)) or inspect.isclass(obj))
                    and not inspect.getdoc(obj)]
    assert undocumented == []


def test_nothing_speaks_of_how_the_project_was_built():
    paths = []
    for top in SCANNED:
        base = ROOT / top
        paths += [base] if base.is_file() else [p for p in base.rglob("*") if p.suffix in TEXT_SUFFIXES]
    hits = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if m := BUILD_PROCESS.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {m.group(0)!r}")
    assert hits == [], "\n".join(hits)


def test_the_phrase_check_catches_what_it_should():
    caught = ["(the issue expects about 53)", "could not be checked in this environment",
              "looked up in this workplace's stored corpora", "864 sketches/s (loaded machine)",
              "the search returns only their opening", "no number is typed in from memory"]
    assert all(BUILD_PROCESS.search(text) for text in caught)
    fine = ["timed on a 2-core CPU with other processes running", "the paper's Table 2 is not reproduced here",
            "issues a warning", "a checkpoint session_id", "the procedural corpus' mean"]
    assert not any(BUILD_PROCESS.search(text) for text in fine)


def test_results_links_in_guides_point_at_the_served_copy(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ inside docs/
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert hooks.served_link("../results/dro/a.png", "") == "results/dro/a.png"
    assert hooks.served_link("../../benchmarks/results/dro.json", "api") == "../benchmarks/results/dro.json"
    assert hooks.served_link("dro.md", "") == "dro.md"
    assert hooks.served_link("https://x.org/a.png", "") == "https://x.org/a.png"
