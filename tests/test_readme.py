"""README.md and the docs pages: results tables are copies of committed results files, links
resolve, and the README stays a short front page with every method's row."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "tools" / "sync_readme.py")
sync_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_readme)
docs_spec = importlib.util.spec_from_file_location("test_docs", ROOT / "tests" / "test_docs.py")
test_docs = importlib.util.module_from_spec(docs_spec)
docs_spec.loader.exec_module(test_docs)

SUBPACKAGES = ("sorting", "logic", "render", "algovision", "knowledge", "sketch", "segmentation", "dro")
README = (ROOT / "README.md").read_text()


def local_targets(text: str) -> list[str]:
    return [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"^([a-z]+:|#)", t)]


def test_results_blocks_match_the_committed_results():
    blocks = 0
    for page in sync_readme.pages():
        text = page.read_text()
        blocks += len(sync_readme.BLOCK.findall(text))
        rendered = sync_readme.render(text, ROOT, page.parent.relative_to(ROOT).as_posix())
        assert rendered == text, f"{page.relative_to(ROOT)} is out of date: run `python tools/sync_readme.py`"
    assert blocks >= 4  # the guides of sketch (2), segmentation and dro copy their tables


def test_readme_is_short_and_its_local_links_resolve():
    assert len(README.encode()) < 12_000
    targets = local_targets(README)
    assert targets
    missing_guides, _ = test_docs.missing_parts()  # guides still being written
    allowed = {f"docs/{name}.md" for name in missing_guides}
    assert [t for t in targets if not (ROOT / t).exists() and t not in allowed] == []


def test_readme_lists_every_subpackage_with_a_headline_backed_by_its_results():
    rows = {m.group(1): line for line in README.splitlines()
            if (m := re.search(r"\[`quintet\.(\w+)`\]", line)) and line.startswith("|")}
    assert set(rows) == set(SUBPACKAGES)
    for name, row in rows.items():
        headline = row.rstrip(" |").rsplit("|", 1)[1]
        linked = re.findall(r"\((results/[^)]+\.md)\)", headline)
        assert linked, f"{name}: a headline number needs a link to its results table"
        source = (ROOT / linked[0]).read_text()
        numbers = re.findall(r"\d+\.\d+", re.sub(r"\([^)]*\)", "", headline))
        assert numbers and all(n in source for n in numbers), f"{name}: {numbers} not all in {linked[0]}"


def test_section_copy_demotes_headings_below_the_page_heading_and_rewrites_links(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "r.md").write_text(
        "# Title\nintro\n## A part\n| x |\n|---|\n| 1 |\n![plot](a.png) [site](https://x.org)\n## B part\nb\n")
    page = "## Results\n<!-- results: res/r.md#a part -->\nstale\n<!-- /results -->\nend\n"
    out = sync_readme.render(page, tmp_path)
    assert out == ("## Results\n<!-- results: res/r.md#a part -->\n### A part\n| x |\n|---|\n| 1 |\n"
                   "![plot](res/a.png) [site](https://x.org)\n<!-- /results -->\nend\n")
    in_docs = sync_readme.render(page, tmp_path, "docs")
    assert "![plot](../res/a.png)" in in_docs
    whole = sync_readme.render("<!-- results: res/r.md -->\n<!-- /results -->", tmp_path)
    assert "## Title" in whole and "### B part" in whole
    two = sync_readme.render("# P\n## S\n<!-- results: res/r.md#a -->\n<!-- /results -->\n"
                             "<!-- results: res/r.md#b -->\n<!-- /results -->\n", tmp_path)
    assert "### A part" in two and "### B part" in two  # a copied heading does not nest the next copy
    with pytest.raises(SystemExit, match="no heading starting with 'C'"):
        sync_readme.render("<!-- results: res/r.md#C -->\n<!-- /results -->", tmp_path)
    with pytest.raises(SystemExit, match="does not exist"):
        sync_readme.render("<!-- results: res/none.md -->\n<!-- /results -->", tmp_path)
