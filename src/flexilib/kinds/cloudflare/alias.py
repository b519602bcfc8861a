"""Letting `import workers` find flexilib's implementation.

A worker written for Cloudflare starts with `from workers import ...`; on
Cloudflare that module is the runtime's SDK. `install_workers_alias()` makes
the same import work under flexilib by registering this package as
`sys.modules["workers"]`, but never shadows a `workers` that imports: it
only steps in when

- no module named `workers` can be found, or
- one is installed but fails to import. That is the real SDK
  (`workers-runtime-sdk`, often installed for editor type hints): it needs
  Pyodide's `js` module, so it cannot run in CPython. What its failed import
  left in `sys.modules` is removed before the alias goes in.

An importable `workers` (whatever it is) stays; the call then returns False
so the caller can log that worker modules will get that one. The alias is
process-wide, like any entry in `sys.modules`; the worker handler calls this
before it loads a worker module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

__all__ = ["install_workers_alias"]

_PACKAGE = "flexilib.kinds.cloudflare.sdk"  # what worker code gets as `workers`
_lock = threading.Lock()


def _drop_partial_import(before: set[str]) -> None:
    for name in set(sys.modules) - before:
        if name == "workers" or name.startswith("workers."):
            del sys.modules[name]


def install_workers_alias() -> bool:
    """Make `import workers` give flexilib's module; False when another `workers` imports."""
    this = importlib.import_module(_PACKAGE)
    with _lock:
        existing = sys.modules.get("workers")
        if existing is not None:
            return existing is this
        if importlib.util.find_spec("workers") is not None:
            before = set(sys.modules)
            try:
                importlib.import_module("workers")
            except Exception:  # the Pyodide-only SDK: ImportError for `js`, or newer syntax
                _drop_partial_import(before)
            else:
                return False
        sys.modules["workers"] = this
        return True
