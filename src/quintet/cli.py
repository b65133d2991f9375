"""The ``quintet`` command: mounts each method's sub-app, ``demo``, ``reproduce`` and ``data``.

Each method's ``quintet.<package>.cli`` module provides

* ``app`` — a :class:`typer.Typer` mounted as ``quintet <command>``;
* ``reproduce(out: Path, quick: bool, seed: int) -> dict`` — the paper's key experiment, writing
  results.json, results.md and PNGs into ``out`` and returning the metrics (knowledge alone also
  takes ``model: str``, from ``quintet reproduce --model``);
* ``demo(run: quintet.core.Run) -> str`` — a short tour on built-in data, saving PNGs into
  ``run.path`` and returning a Markdown section.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Optional

import typer

try:  # typer >= 0.22 ships its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

from quintet import __version__
from quintet.core import options
from quintet.core.errors import QuintetError, check_choice

# (command, module, title) of every method, in the order the demo visits them.
METHODS: list[tuple[str, str, str]] = [
    ("sort", "quintet.sorting.cli", "sorting"),
    ("logic", "quintet.logic.cli", "logic"),
    ("render", "quintet.render.cli", "render"),
    ("algovision", "quintet.algovision.cli", "algovision"),
    ("knowledge", "quintet.knowledge.cli", "knowledge"),
    ("sketch", "quintet.sketch.models.cli", "sketch"),
    ("segment", "quintet.segmentation.cli", "segmentation"),
    ("dro", "quintet.dro.cli", "dro"),
]

app = typer.Typer(
    name="quintet",
    help="Five machine-learning papers as tested, fast PyTorch tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _method_module(module: str) -> ModuleType | None:
    """Import a method's CLI module; ``None`` only when that subpackage does not exist yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return None
        raise


def _available() -> dict[str, ModuleType]:
    found = {}
    for _command, module, title in METHODS:
        mod = _method_module(module)
        if mod is not None:
            found[title] = mod
    return found


def _method_title(name: str, option: str, extra: tuple[str, ...] = ()) -> str:
    """The method's title (``sorting``) from its title or its command (``sort``); else a clear error."""
    titles = {command: title for command, _module, title in METHODS} | {title: title for *_, title in METHODS}
    available = _available()
    if name in extra:
        return name
    if titles.get(name) not in available:
        names = sorted({n for n, t in titles.items() if t in available})
        raise QuintetError(f"unknown method {name!r} for {option}; expected one of: {', '.join([*names, *extra])}")
    return titles[name]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"quintet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", file_okay=False,
        help="Data root (else $QUINTET_DATA, else ../shared/data beside the clone when it exists, else ~/.cache/quintet).",
    ),
) -> None:
    """Five machine-learning papers as tested, fast PyTorch tools."""
    if data_dir is not None:
        os.environ["QUINTET_DATA"] = str(data_dir)


@app.command()
def demo(
    out: Path = options.output_folder(Path("runs"), "Folder that receives the report."),
    only: Optional[str] = typer.Option(None, help="Run one method only (e.g. sorting or sort)."),
) -> None:
    """A short tour of every method on built-in data; writes a Markdown + PNG report under runs/."""
    from quintet.core.runs import Run

    methods = _available()
    if only is not None:
        title = _method_title(only, "--only")
        methods = {title: methods[title]}
    run = Run.create(out, "demo")
    sections = [f"# quintet demo\n\nquintet {__version__}. Each section ran on built-in data.\n"]
    timings = {}
    for title, mod in methods.items():
        typer.echo(f"[demo] {title} ...")
        start = time.perf_counter()
        sections.append(mod.demo(run))
        timings[title] = round(time.perf_counter() - start, 1)
        typer.echo(f"[demo] {title} done in {timings[title]} s")
    run.log_metrics({"seconds_per_method": timings})
    report = run.finish("\n".join(sections))
    typer.echo(f"report: {report / 'results.md'}")


@app.command()
def reproduce(
    method: str = typer.Argument(..., help="sorting (sort), logic, render, algovision, knowledge, sketch, "
                                 "segmentation (segment), dro or all"),
    quick: bool = typer.Option(False, "--quick", help="The scale this machine bears in minutes."),
    out: Path = options.output_folder(Path("runs/reproduce"), "Each method writes into OUT/<method>."),
    seed: int = options.seed(0, "Base random seed."),
    model: Optional[str] = typer.Option(None, "--model", help="knowledge only: factlm (default, the library's "
                                        "fact LM) or smollm2 (pretrained SmolLM2-135M, into OUT/knowledge/smollm2)."),
    finished_only: bool = typer.Option(False, "--finished-only", help="segmentation only: train nothing, report "
                                       "the training runs that have finished."),
) -> None:
    """Run a paper's key experiment; writes results.json, results.md and PNG plots."""
    methods = _available()
    method = _method_title(method, "reproduce", extra=("all",))
    if model is not None and method not in ("all", "knowledge"):
        raise QuintetError(f"--model {model!r} applies to knowledge only, not to {method!r}")
    if finished_only and method != "segmentation":
        raise QuintetError(f"--finished-only applies to segmentation only, not to {method!r}")
    if model is not None and "knowledge" in methods:  # refuse a bad name before any method runs
        check_choice("knowledge model", model, methods["knowledge"].REPRODUCE_MODELS)
    for title, mod in methods.items():
        if method in ("all", title):
            typer.echo(f"[reproduce] {title} -> {out / title}")
            extra: dict = {"model": model} if model is not None and title == "knowledge" else {}
            if finished_only:
                extra["finished_only"] = True
            mod.reproduce(out / title, quick=quick, seed=seed, **extra)


data_app = typer.Typer(help="The real data sets under the data root.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(verify: bool = typer.Option(True, help="Compare sha256 sums with the recorded ones.")) -> None:
    """Which data sets are found under the data root, their sizes, whether checksums match."""
    from rich.console import Console
    from rich.table import Table

    from quintet.datasets.registry import check_all, data_root

    root = data_root()
    if not root.is_dir():
        raise QuintetError(f"data root {root} is not a folder (set --data-dir or QUINTET_DATA)")
    table = Table(title=f"data root: {root}")
    for column in ("data set", "file", "size", "status"):
        table.add_column(column)
    rows = check_all(root, verify=verify)
    for row in rows:
        table.add_row(row.dataset, row.relpath, row.size_text, row.status)
    Console().print(table)
    if all(row.status == "missing" for row in rows):
        raise QuintetError(f"no data set found under the data root {root} (set --data-dir or QUINTET_DATA)")
    bad = [row.relpath for row in rows if row.status == "CHECKSUM MISMATCH"]
    if bad:
        typer.echo(f"quintet: {len(bad)} file(s) do not match their recorded sha256: {', '.join(bad)}", err=True)
        raise typer.Exit(1)


def _mount_methods() -> None:
    """Each sub-app under its command (``sort``) and, hidden, under its method name (``sorting``)."""
    for command, module, title in METHODS:
        mod = _method_module(module)
        if mod is not None:
            app.add_typer(mod.app, name=command)
            if title != command:
                app.add_typer(mod.app, name=title, hidden=True)


_mount_methods()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and exit status 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="quintet", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("quintet: aborted", err=True)
        return 130
    except click_exceptions.NoArgsIsHelpError:  # the help text has been printed already
        return 0
    except click_exceptions.UsageError as exc:
        typer.echo(f"quintet: error: {' '.join(exc.format_message().split())}", err=True)
        return 2
    except (QuintetError, OSError) as exc:  # bad input, or a path that is missing / not writable
        typer.echo(f"quintet: error: {' '.join(str(exc).split())}", err=True)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
