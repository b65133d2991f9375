"""MkDocs hooks: serve the committed results beside the pages, and write the command-line reference.

* ``results/<method>/*`` and ``benchmarks/results/*`` (Markdown, PNG, SVG, JSON) are added to the site under the same paths, so a
  guide links them as it would on a repository browser (``../results/dro/dro_weights.png`` from
  ``docs/dro.md``); such links are rewritten to the served copy.
* ``<!-- cli-reference -->`` in a page is replaced by every ``quintet`` command with its arguments
  and options, read from the Typer app itself, so the reference cannot fall behind the code.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
MOUNTED = ("results", "benchmarks/results")
# what a reproduction or a benchmark commits: results/<method>/[<variant>/]<file>, benchmarks/results/<file>
PATTERNS = ("results/*/*", "results/*/*/*", "benchmarks/results/*")
SUFFIXES = {".md", ".png", ".json", ".svg"}
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
MARKER = "<!-- cli-reference -->"


def on_files(files: Files, config) -> Files:
    for pattern in PATTERNS:
        for path in sorted(ROOT.glob(pattern)):
            if path.is_file() and path.suffix in SUFFIXES:
                uri = path.relative_to(ROOT).as_posix()
                files.append(File.generated(config, uri, abs_src_path=str(path),
                                            inclusion=InclusionLevel.NOT_IN_NAV))
    return files


def served_link(target: str, page_dir: str) -> str:
    """``target`` as written in ``docs/<page_dir>/page.md``, pointed at the served copy when it
    leaves ``docs/`` for a mounted folder; any other target is returned unchanged."""
    if re.match(r"^([a-z]+:|/|#)", target):
        return target
    repo_path = posixpath.normpath(posixpath.join("docs", page_dir, target))
    if any(repo_path == top or repo_path.startswith(top + "/") for top in MOUNTED):
        return posixpath.relpath(repo_path, page_dir or ".")
    return target


def cli_reference() -> str:
    """Markdown for every command of ``quintet``: usage, help, arguments and options."""
    import typer.main

    from quintet.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="quintet")
    return "\n".join(_command_section(root, ctx, "quintet", 2))


def _command_section(cmd, ctx, path: str, level: int) -> list[str]:
    """A heading, usage and parameter table for ``cmd``, then its sub-commands (click objects of
    whichever click copy Typer uses)."""
    lines = [f"{'#' * level} `{path}`", "", (cmd.help or "").strip().split("\n\n")[0], ""]
    lines += ["```", f"{path} {' '.join(cmd.collect_usage_pieces(ctx))}".strip(), "```", ""]
    rows = [_param_row(p) for p in cmd.params if not getattr(p, "hidden", False)]
    if rows:
        lines += ["| argument / option | default | help |", "|---|---|---|", *rows, ""]
    for name, sub in getattr(cmd, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            lines += _command_section(sub, sub_ctx, f"{path} {name}", min(level + 1, 4))
    return lines


def _param_row(param) -> str:
    names = " / ".join(param.opts + param.secondary_opts)
    if param.param_type_name == "argument":
        names = param.name.upper()
    default = param.default
    shown = "" if default is None or callable(default) or default == () else f"`{default}`"
    text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    return f"| `{names}` | {shown} | {text} |"


def on_page_markdown(markdown: str, page, config, files) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)
    if page.file.src_uri.startswith(MOUNTED):
        return markdown
    markdown = LINK.sub(lambda m: m.group(1) + served_link(m.group(2), page_dir) + m.group(3), markdown)
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
