"""MkDocs hooks: the pages that are generated from the code, so they cannot drift.

- `<!-- generated: options -->` becomes the table of every `flexilib serve`
  flag and environment variable, built from `flexilib.settings.OPTIONS`: the
  table the command line builds its flags and `--help` from
  (tests/unit/test_docs_reference.py checks the two agree).
- `<!-- include: PATH -->` becomes the file at PATH (relative to the
  repository root), its headings moved one level down, so the performance
  page shows `bench/RESULTS.md` as committed instead of figures copied from it.
"""

from __future__ import annotations

import re
from pathlib import Path

from flexilib.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
_INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
_OPTIONS = "<!-- generated: options -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_table() -> str:
    """The flag/variable reference as a Markdown table, in `OPTIONS` order."""
    rows = [
        "| flag | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for option in OPTIONS:
        variable = f"`{option.variable}`" if option.variable else "–"
        rows.append(
            f"| `{option.flag} {option.metavar}` | {variable} | {_cell(option.default)} "
            f"| {_cell(option.help)} |"
        )
    return "\n".join(rows)


def included(path: str) -> str:
    """A repository file for inclusion in a page: headings one level down."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)


def on_page_markdown(markdown: str, **_: object) -> str:
    markdown = markdown.replace(_OPTIONS, options_table())
    return _INCLUDE.sub(lambda m: included(m.group(1)), markdown)
