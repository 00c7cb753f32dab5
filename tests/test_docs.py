"""Every Python block of the README and the docs pages runs as written (on a CPU, offline, with the default model);
blocks marked ``<!-- needs: ... -->`` excepted (tests/doc_blocks.py)."""

from pathlib import Path

import pytest

from .doc_blocks import python_blocks, run_block

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "guide").glob("*.md"))]
BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def test_the_readme_opens_with_a_cpu_quickstart_for_each_surface():
    readme = [block for block in BLOCKS if block.path.name == "README.md"]
    imports = " ".join(block.code for block in readme if not block.needs)
    for surface in ("echo_embeddings import EchoEncoder", "langchain_echo", "llamaindex_echo", "sentence_transformer"):
        assert surface in imports
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.default_model
@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.needs], ids=lambda b: b.name)
def test_block_runs(block):
    result = run_block(block)
    assert result.returncode == 0, f"{block.name}\n{result.stderr[-3000:]}"


def test_the_settings_tables_are_generated_from_the_settings_models():
    """A setting is described once, in its field: the docs' tables are made from the fields and kept up to date."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "docs" / "settings_table.py")
    settings_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings_table)
    tables = [page for page in settings_table.PAGES if settings_table.TABLE.search(page.read_text())]
    assert {page.name for page in tables} >= {"usage.md", "fine-tuning.md", "serving.md"}
    for page in tables:
        text = page.read_text()
        assert settings_table.render(text) == text, f"{page} is stale: run python docs/settings_table.py"


def test_the_site_renders_every_public_name_and_shows_what_a_reader_needs(tmp_path):
    """The documentation site builds strictly (a broken link or reference fails), and what a reader sees is
    rendered: no ``:class:`...``` left as text, and the API page documents every name of ``__all__``."""
    import re
    import subprocess
    import sys

    import echo_embeddings

    site = tmp_path / "site"
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    result = subprocess.run(mkdocs, cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                            "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    role = re.compile(r":(class|meth|func|mod|data|attr|exc|obj):`|::</p>")  # a role, or reST's literal-block marker
    for page in site.rglob("*.html"):
        assert not role.search(page.read_text(encoding="utf-8")), f"{page.relative_to(site)} shows reST markup"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    missing = [name for name in echo_embeddings.__all__ if f'id="echo_embeddings.{name}"' not in api]
    assert not missing, f"the API page lacks {missing}"
    assert 'id="echo_embeddings.EchoEncoder.__' not in api  # no dunder methods
    # what users call first comes first; each adapter lists its own fields; the internals have a page of their own
    order = [api.index(f'id="{name}"') for name in ("echo_embeddings.EchoEncoder.from_pretrained",
             "echo_embeddings.EchoEncoder.encode", "langchain_echo.EchoEmbeddings", "llamaindex_echo.EchoEmbedding",
             "echo_embeddings.EchoConfig")]  # fmt: skip
    assert order == sorted(order)
    assert "<code>encode_kwargs</code>" in api and "<code>embed_batch_size</code>" in api
    internals = (site / "internals" / "index.html").read_text(encoding="utf-8")
    assert 'id="echo_embeddings.core.EchoCore"' in internals and 'id="echo_embeddings.core.EchoCore"' not in api
    _check_what_a_browser_shows(site)


def _check_what_a_browser_shows(site):
    """Every page has a title of its own, every image under docs/ is shown by a page, and code wraps at the width
    of its box (a long line's end, often the comment that explains it, is never hidden behind a scroll bar)."""
    import re

    pages = sorted(site.rglob("index.html"))
    titles = [re.search(r"<title>(.*?)</title>", page.read_text(encoding="utf-8")).group(1) for page in pages]
    repeated = sorted({title for title in titles if titles.count(title) > 1})
    assert not repeated, f"titles of more than one page: {repeated}"
    shown = set()
    for page in pages:
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page.read_text(encoding="utf-8")):
            shown.add((page.parent / src).resolve())
    images = {(site / p.relative_to(ROOT / "docs")).resolve() for p in (ROOT / "docs").rglob("*.png")}
    assert not images - shown, f"images no page shows: {sorted(str(p.relative_to(site)) for p in images - shown)}"
    css = (site / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert re.search(r"\.md-typeset pre > code \{[^}]*white-space: pre-wrap", css)
    assert all('stylesheets/extra.css"' in page.read_text(encoding="utf-8") for page in pages)


CONTENT_PX = 840
"""About the width of a page's content column at 1,400 px (Material, this site's extra.css)."""


def _markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_table_fits_the_page_and_every_list_renders_as_one():
    """A table's narrowest width (each column as wide as its longest unbreakable word, plus the cell's padding; as
    measured in Chromium at 1,400 px) fits the content column, so no column hides behind a scroll bar; and a list
    follows a blank line (Markdown otherwise runs its items into the paragraph above)."""
    import re

    for page in _markdown_pages():
        lines = [*page.read_text(encoding="utf-8").split("\n"), ""]  # a table that ends the page ends here
        fenced = False
        rows: list[list[str]] = []
        for number, line in enumerate(lines, 1):
            fenced ^= line.startswith("```")
            if line.startswith("|") and not fenced:
                if not re.fullmatch(r"\|[-:| ]+\|", line):
                    rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
                continue
            if rows:
                widths = [max((len(word) for cell in column for word in re.split(r"[\s/-]", re.sub(r"[`*]", "", cell))),
                              default=0) for column in zip(*rows, strict=False)]  # fmt: skip
                assert sum(7.5 * w + 32 for w in widths) <= CONTENT_PX, (
                    f"{page.name}:{number}: the table above is too wide"
                )
                rows = []
            previous = lines[number - 2] if number > 1 else ""
            if not fenced and re.match(r"(- |\* |\d+\. )", line) and previous.strip():
                assert re.match(r"\s*(- |\* |\d+\. )|\s{2,}\S|<!--", previous), (
                    f"{page.name}:{number}: a list right after a paragraph line renders inline; leave a blank line"
                )


def test_the_development_page_maps_every_module_of_the_package():
    """Each module of the package is named once in the development page's map, and the map names no other."""
    import re

    package = ROOT / "shared" / "echo_embeddings"
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    layout = page[page.index("## Layout") : page.index("## Setup and tests")]
    mapped = set(re.findall(r"`([\w/]+(?:\.py)?)`", layout))
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        assert path.name in mapped or str(relative) in mapped, f"{relative} is not in the development page's map"
    for folder in ("cli/", "serving/", "evaluation/", "training/"):
        assert folder in mapped
    modules = {p.name for p in package.rglob("*.py")}
    stale = {name for name in mapped if name.endswith(".py") and "/" not in name and name not in modules}
    assert not stale, f"the map names modules that do not exist: {sorted(stale)}"
