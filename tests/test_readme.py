"""The README's results tables are copies of committed results files, and its links resolve."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "tools" / "sync_readme.py")
sync_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_readme)


def test_readme_results_blocks_match_the_committed_results():
    readme = (ROOT / "README.md").read_text()
    assert len(sync_readme.BLOCK.findall(readme)) >= 6  # every method shows its reproduction table
    assert sync_readme.render(readme) == readme, "run `python tools/sync_readme.py`"


def test_readme_local_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if not re.match(r"^([a-z]+:|#)", t)]
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing


def test_section_copy_demotes_headings_and_rewrites_links(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "r.md").write_text(
        "# Title\nintro\n## A part\n| x |\n|---|\n| 1 |\n![plot](a.png) [site](https://x.org)\n## B part\nb\n")
    readme = "top\n<!-- results: res/r.md#a part -->\nstale\n<!-- /results -->\nend\n"
    out = sync_readme.render(readme, tmp_path)
    assert out == ("top\n<!-- results: res/r.md#a part -->\n#### A part\n| x |\n|---|\n| 1 |\n"
                   "![plot](res/a.png) [site](https://x.org)\n<!-- /results -->\nend\n")
    whole = sync_readme.render("<!-- results: res/r.md -->\n<!-- /results -->", tmp_path)
    assert "#### Title" in whole and "##### B part" in whole
    with pytest.raises(SystemExit, match="no heading starting with 'C'"):
        sync_readme.render("<!-- results: res/r.md#C -->\n<!-- /results -->", tmp_path)
    with pytest.raises(SystemExit, match="does not exist"):
        sync_readme.render("<!-- results: res/none.md -->\n<!-- /results -->", tmp_path)
