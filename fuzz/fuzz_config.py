"""Fuzz target: proxy.ini text into the config parser and every kind's option checks.

Any exception other than `ConfigError` (a `file:line: message` for the
user) is a crash: a `flexilib check` that prints a traceback. Finding 12 of
issue 10 (a path component over 255 bytes raising OSError) was one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from flexilib.config import ConfigError, parse_config
    from flexilib.runtime.handler import validate_rules

FOLDER = Path(tempfile.mkdtemp(prefix="flexilib-fuzz-"))  # relative paths resolve in here
CONFIG = FOLDER / "proxy.ini"


def test_one_input(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # load_config reports non-UTF-8 before parsing
    try:
        validate_rules(parse_config(text, CONFIG), CONFIG)
    except ConfigError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
