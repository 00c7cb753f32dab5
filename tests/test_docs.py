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
