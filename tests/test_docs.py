"""The documentation stays true to what it points at: the table of current
figures in docs/BENCHMARKS.md is the one benchmarks/figures.json makes, each
figure is stated in the journal section it names, and every relative link in
README.md and docs/*.md leads to a file that exists."""
import glob
import os
import re

import figures_table  # benchmarks/, on the path through conftest
from conftest import ROOT

PAGES = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_the_figures_table_is_up_to_date():
    assert figures_table.main(["--check"]) == 0, "run: python benchmarks/figures_table.py"


def test_a_figure_the_journal_does_not_state_is_refused():
    journal = "## Journal\n\n### 2026-01-02, a run\n\n| engine | 12.5 ms |\n"
    stated = {"name": "engine", "value": "12.5 ms", "device": "a GPU", "date": "2026-01-02", "command": None,
              "section": "2026-01-02, a run"}
    assert figures_table.problems([stated], journal) == []
    made_up = [dict(stated, value="11.0 ms"), dict(stated, section="2026-01-03, another run"),
               dict(stated, date="2026-01-09"), dict(stated, device="")]
    for figure in made_up:
        assert len(figures_table.problems([figure], journal)) == 1, figure


def _relative_links(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        text = CODE.sub("", FENCE.sub("", f.read()))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_every_relative_link_in_the_docs_leads_to_a_file():
    broken = []
    for page in PAGES:
        for target in _relative_links(page):
            path = os.path.normpath(os.path.join(os.path.dirname(page), target.split("#", 1)[0]))
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(page, ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)
    assert any(_relative_links(page) for page in PAGES)  # the links were found at all
