"""Copy committed results into README.md, so its tables are what the runs wrote, never retyped.

README.md marks each copied block::

    <!-- results: results/dro/results.md#biased-sst -->
    (generated; edits here are overwritten)
    <!-- /results -->

The part after ``#`` picks one section: the heading whose text starts with it (case-insensitive)
down to the next heading of the same or a higher level; without it the whole file is copied.
Copied headings are demoted so the shallowest becomes ``####``, and relative links and images
are rewritten relative to the README. ``python tools/sync_readme.py`` rewrites README.md;
``--check`` exits 1 when it is out of date (a test runs the check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- results: (?P<src>[^#\s]+)(?:#(?P<sec>[^>]*?))? -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
HEADING = re.compile(r"^(#+) (.*)$")
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


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


def adapt(text: str, src_dir: str) -> str:
    """Demote headings (shallowest -> ####) and make relative links relative to the README."""
    levels = [len(m.group(1)) for line in text.splitlines() if (m := HEADING.match(line))]
    shift = 4 - min(levels) if levels else 0

    def heading(line: str) -> str:
        m = HEADING.match(line)
        return f"{'#' * (len(m.group(1)) + shift)} {m.group(2)}" if m else line

    def link(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^([a-z]+:|/|#)", target):
            return m.group(0)
        return f"{m.group(1)}{src_dir}/{target}{m.group(3)}"

    return LINK.sub(link, "\n".join(heading(line) for line in text.splitlines())).strip() + "\n"


def render(readme: str, root: Path = ROOT) -> str:
    """README text with every results block refilled from its source file."""

    def fill(m: re.Match) -> str:
        src = m.group("src")
        path = root / src
        if not path.is_file():
            raise SystemExit(f"sync_readme: {src} (named in README.md) does not exist")
        body = adapt(select_section(path.read_text(), m.group("sec"), src), str(Path(src).parent))
        return f"{m.group(1)}{body}{m.group(5)}"

    return BLOCK.sub(fill, readme)


def main(argv: list[str]) -> int:
    path = ROOT / "README.md"
    old = path.read_text()
    new = render(old)
    if "--check" in argv:
        if new != old:
            print("README.md is out of date with results/: run `python tools/sync_readme.py`")
            return 1
        return 0
    if new != old:
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(new)
        tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
