"""The Python blocks of the README and the docs pages, and a runner for them (the tests and CI's install check).

A block preceded by ``<!-- needs: WHAT -->`` on the line before its fence needs something a CPU machine without
network does not have (a GPU, a hub model, a running server, the reader's own data) and is not run.

    python tests/doc_blocks.py run FILE... [--allow-missing-extras]

runs every other block in a fresh interpreter in a temporary folder; with ``--allow-missing-extras`` a block that
fails only because an extra is not installed counts as not run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NEEDS = re.compile(r"^<!--\s*needs:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    needs: str | None

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """Every fenced ``python`` block of a Markdown file, with what it needs."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, body = i, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            needs = NEEDS.match(lines[start - 1]) if start else None
            blocks.append(Block(Path(path), start + 1, "\n".join(body) + "\n", needs.group(1) if needs else None))
        i += 1
    return blocks


def run_block(block: Block, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``block`` with this interpreter in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run(
            [sys.executable, "-c", block.code], cwd=folder, capture_output=True, text=True, timeout=timeout
        )


def _missing_extra(stderr: str) -> bool:
    """Whether a block failed only for want of an extra: our one-line error, or the block's own import of a
    package that an extra installs."""
    from echo_embeddings.extras import EXTRAS

    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    missing = re.match(r"ModuleNotFoundError: No module named '([\w.]+)'", last)
    return "MissingDependencyError" in last or bool(missing and missing.group(1).split(".")[0] in EXTRAS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--allow-missing-extras", action="store_true")
    args = parser.parse_args()
    ran = 0
    for path in args.files:
        for block in python_blocks(path):
            if block.needs:
                print(f"{block.name}: not run (needs {block.needs})")
                continue
            result = run_block(block)
            if result.returncode and args.allow_missing_extras and _missing_extra(result.stderr):
                print(f"{block.name}: not run here ({result.stderr.strip().splitlines()[-1]})")
                continue
            if result.returncode:
                print(f"{block.name}: failed\n{result.stdout}{result.stderr}")
                return 1
            print(f"{block.name}: ran")
            ran += 1
    if not ran:
        print("no block ran")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
