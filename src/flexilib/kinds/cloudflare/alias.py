"""Letting `import workers`, `import asgi` and `import js` find flexilib's implementation.

A worker written for Cloudflare starts with `from workers import ...`, and
may `import asgi` (serving FastAPI) or `from js import console`; on
Cloudflare those modules are the runtime's. `install_workers_alias()` makes
the same imports work under flexilib by registering flexilib's modules under
those names in `sys.modules`, but never shadows a module of that name that
imports: it only steps in when

- no module of that name can be found, or
- one is installed but fails to import. That is the real SDK
  (`workers-runtime-sdk`, often installed for editor type hints): it needs
  Pyodide's `js` module, so it cannot run in CPython. What its failed import
  left in `sys.modules` is removed before the alias goes in.

An importable `workers` (whatever it is) stays; the call then returns False
so the caller can log that worker modules will get that one. The aliases are
process-wide, like any entry in `sys.modules`; the worker handler calls this
before it loads a worker module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

__all__ = ["install_workers_alias"]

_SDK = "flexilib.kinds.cloudflare.sdk"
# `workers` first: an installed real SDK is tried before our `js` could make its import pass
_ALIASES = (("workers", _SDK), ("asgi", f"{_SDK}.asgi"), ("js", f"{_SDK}.js"))
_lock = threading.Lock()


def _drop_partial_import(before: set[str], name: str) -> None:
    for other in set(sys.modules) - before:
        if other == name or other.startswith(name + "."):
            del sys.modules[other]


def _install(name: str, package: str) -> bool:
    this = importlib.import_module(package)
    existing = sys.modules.get(name)
    if existing is not None:
        return existing is this
    if importlib.util.find_spec(name) is not None:
        before = set(sys.modules)
        try:
            importlib.import_module(name)
        except Exception:  # the Pyodide-only SDK: ImportError for `js`, or newer syntax
            _drop_partial_import(before, name)
        else:
            return False
    sys.modules[name] = this
    return True


def install_workers_alias() -> bool:
    """Make `import workers` (and `asgi`, `js`) give flexilib's modules; False when another
    `workers` imports."""
    with _lock:
        results = {name: _install(name, package) for name, package in _ALIASES}
    return results["workers"]
