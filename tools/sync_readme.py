"""Copy committed results into README.md and the documentation pages, so their tables are what the
runs wrote, never retyped.

A page (README.md or any ``docs/**/*.md``) marks each copied block::

    <!-- results: results/dro/results.md#biased-sst -->
    (generated; edits here are overwritten)
    <!-- /results -->

The path is relative to the repository root. The part after ``#`` picks one section: the heading
whose text starts with it (case-insensitive) down to the next heading of the same or a higher
level; without it the whole file is copied. Copied headings are demoted so that the shallowest
sits one level below the page's heading above the block (level 2 when there is none), and
relative links and images are rewritten relative to the page. ``python tools/sync_readme.py``
rewrites every page that is out of date; ``--check`` lists them and exits 1 (a test runs it).
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- results: (?P<src>[^#\s]+)(?:#(?P<sec>[^>]*?))? -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
HEADING = re.compile(r"^(#+) (.*)$")
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def select_section(text: str, section: str | None, src: str) -> str:
    """The whole text, or the section under the heading starting with ``section``."""
    if not section:
        return text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = HEADING.match(line)
        if m and m.group(2).lower().startswith(section.lower()):
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := HEADING.match(lines[j])) and len(h.group(1)) <= level), len(lines))
            return "\n".join(lines[i:end])
    raise SystemExit(f"sync_readme: no heading starting with {section!r} in {src}")


def adapt(text: str, src_dir: str, page_dir: str = ".", top: int = 4) -> str:
    """Demote headings (shallowest -> ``top``) and make relative links relative to the page's
    folder ``page_dir`` (both folders relative to the repository root)."""
    levels = [len(m.group(1)) for line in text.splitlines() if (m := HEADING.match(line))]
    shift = top - min(levels) if levels else 0

    def heading(line: str) -> str:
        m = HEADING.match(line)
        return f"{'#' * (len(m.group(1)) + shift)} {m.group(2)}" if m else line

    def link(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^([a-z]+:|/|#)", target):
            return m.group(0)
        return f"{m.group(1)}{posixpath.relpath(posixpath.join(src_dir, target), page_dir)}{m.group(3)}"

    return LINK.sub(link, "\n".join(heading(line) for line in text.splitlines())).strip() + "\n"


def enclosing_level(page_text_before: str) -> int:
    """Level of the last heading before a block, outside other blocks and code fences (0: none)."""
    text = FENCE.sub("", BLOCK.sub("", page_text_before))
    levels = [len(m.group(1)) for line in text.splitlines() if (m := HEADING.match(line))]
    return levels[-1] if levels else 0


def render(page: str, root: Path = ROOT, page_dir: str = ".") -> str:
    """Page text with every results block refilled from its source file; ``page_dir`` is the
    page's folder relative to ``root``."""

    def fill(m: re.Match) -> str:
        src = m.group("src")
        path = root / src
        if not path.is_file():
            raise SystemExit(f"sync_readme: {src} (named in a results block) does not exist")
        top = max(2, min(enclosing_level(page[:m.start()]) + 1, 6))
        body = adapt(select_section(path.read_text(), m.group("sec"), src), str(Path(src).parent), page_dir, top)
        return f"{m.group(1)}{body}{m.group(5)}"

    return BLOCK.sub(fill, page)


def main(argv: list[str]) -> int:
    stale = []
    for path in pages():
        old = path.read_text()
        new = render(old, ROOT, path.parent.relative_to(ROOT).as_posix())
        if new == old:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if "--check" not in argv:
            tmp = path.with_suffix(".md.tmp")
            tmp.write_text(new)
            tmp.replace(path)
    if stale and "--check" in argv:
        print(f"out of date with results/: {', '.join(stale)}; run `python tools/sync_readme.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
