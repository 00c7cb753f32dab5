"""The docs' settings tables, generated from the settings models' fields (default, description): each table sits
between ``<!-- settings-table: MODEL -->`` and ``<!-- end settings-table -->`` in a page. ``MODEL own`` lists only
what an adapter adds to EchoConfig's settings: its own fields and its names for settings (``aliases``).

``python docs/settings_table.py`` rewrites every table in place; tests/test_docs.py fails while one is stale, so
a setting is described once, in its field.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from echo_embeddings.config import SHOWN_DEFAULT

DOCS = Path(__file__).resolve().parent
PAGES = sorted([*DOCS.glob("*.md"), *DOCS.glob("guide/*.md")])
TABLE = re.compile(
    r"(<!-- settings-table: (?P<model>[\w.]+)(?P<own> own)? -->\n)(?P<table>.*?)(<!-- end settings-table -->)", re.S
)


def settings_table(model_path: str, *, own: bool = False) -> str:
    """A Markdown table of the pydantic model's fields: setting, default, description; with ``own``, only the fields
    EchoConfig lacks that say what they do, and the model's ``aliases``."""
    from echo_embeddings.config import EchoConfig

    module, _, name = model_path.rpartition(".")
    model = getattr(importlib.import_module(module), name)
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for field_name, field in model.model_fields.items():
        if own and (field_name in EchoConfig.model_fields or not field.description):
            continue
        rows.append(f"| `{field_name}` | {_default(field)} | {field.description.replace('|', '&#124;')} |")
    for alias, setting in getattr(model, "aliases", {}).items() if own else ():
        rows.append(f"| `{alias}` | | Another name for `{setting}` (either may be given, not both). |")
    return "\n".join(rows) + "\n"


def _default(field: Any) -> str:
    shown = (field.json_schema_extra or {}).get(SHOWN_DEFAULT)
    if shown is not None:
        return shown
    default = field.default_factory() if field.default is PydanticUndefined else field.default
    return "None" if default is None else f"`{default!r}`" if isinstance(default, str) else f"`{default}`"


def render(text: str) -> str:
    """``text`` with every marked table generated anew."""

    def table(match: re.Match[str]) -> str:
        return match.group(1) + settings_table(match.group("model"), own=bool(match.group("own"))) + match.group(5)

    return TABLE.sub(table, text)


def main() -> int:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        if render(text) != text:
            page.write_text(render(text), encoding="utf-8")
            print(f"rewrote {page.relative_to(DOCS.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
