"""The package layout of :mod:`quintet.sketch` keeps its two layers apart.

The foundation (every module outside ``models/``) never imports the generative models, and its
modules import one another one way only. Imports are read with :mod:`ast`, so imports inside
functions count as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import quintet.sketch

PACKAGE = "quintet.sketch"
ROOT = Path(quintet.sketch.__file__).resolve().parent
MODELS = f"{PACKAGE}.models"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` yields ``a`` and ``a.b``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _foundation() -> dict[str, set[str]]:
    """Foundation module name -> the modules it imports."""
    return {
        _module_name(path): _imports(path)
        for path in sorted(ROOT.rglob("*.py"))
        if "models" not in path.relative_to(ROOT).parts
    }


def _imports_module(imports: set[str], module: str) -> bool:
    return any(name == module or name.startswith(module + ".") for name in imports)


def test_foundation_never_imports_the_models():
    foundation = _foundation()
    assert f"{PACKAGE}.constraints" in foundation and f"{PACKAGE}.io.sketchgraphs" in foundation
    offenders = {name: sorted(i for i in imports if _imports_module({i}, MODELS))
                 for name, imports in foundation.items() if _imports_module(imports, MODELS)}
    assert offenders == {}


def test_model_layer_modules_live_in_models():
    for stem in ("cli", "experiment", "real_experiment", "sample", "train"):
        assert (ROOT / "models" / f"{stem}.py").is_file(), stem
    for stem in ("models_cli", "models_experiment", "real_experiment", "sample", "train"):
        assert not (ROOT / f"{stem}.py").exists(), stem


def test_constraints_and_geometry_do_not_import_each_other_both_ways():
    foundation = _foundation()
    constraints, geometry = f"{PACKAGE}.constraints", f"{PACKAGE}.geometry"
    down = _imports_module(foundation[geometry], constraints)
    up = _imports_module(foundation[constraints], geometry)
    assert not (down and up)
    assert not up  # geometry builds on constraints, not the other way


def test_foundation_modules_import_each_other_one_way():
    foundation = _foundation()
    pairs = sorted(
        (a, b)
        for a, imports in foundation.items()
        for b in foundation
        if a < b and b != PACKAGE and a != PACKAGE
        and _imports_module(imports, b) and _imports_module(foundation[b], a)
    )
    assert pairs == []
