"""The generated flag/variable reference says what `flexilib serve --help` says."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of a Markdown table, cells unescaped and stripped of backticks."""
    rows = []
    for line in markdown.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|").strip("`") for c in cells])
    return rows


def serve_help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flexilib", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(done.stdout.split())  # argparse wraps to the terminal's width


def test_generated_table_matches_serve_help():
    rows = table_rows(hooks().options_table())
    text = serve_help().replace("[SWITCH]", "SWITCH")  # an on/off flag may stand alone
    flags_in_help = set(re.findall(r"(?<=\s)(--[a-z-]+) [A-Z]+ ", text))
    assert {row[0].split()[0] for row in rows} == flags_in_help
    for flag, variable, default, meaning in rows:
        where = f"{variable}, " if variable != "–" else ""
        entry = f"{flag} {meaning} ({where}default {default})"
        assert entry in text, f"--help does not say: {entry}"


def test_every_variable_is_listed_in_the_help_epilog():
    rows = table_rows(hooks().options_table())
    variables = [row[1] for row in rows if row[1] != "–"]
    epilog = serve_help().split("environment (flags win):", 1)[1]
    assert [v.strip(" ,") for v in epilog.split()] == variables


def test_settings_page_carries_the_generated_table():
    page = (REPO / "docs" / "reference" / "settings.md").read_text()
    assert "<!-- generated: options -->" in page
    assert hooks().on_page_markdown(page).count("| `--") == len(table_rows(hooks().options_table()))


def test_readme_links_resolve():
    """The README links into docs/, which MkDocs does not check: every target must exist."""
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert len(local) > 20
    assert [t for t in local if not (REPO / t).exists()] == []
