"""Loading a Python file as a fresh module, shared by every Python-based kind.

Each load executes the file in a new module object under a unique name, so
a reload never sees the previous version's globals. Sibling modules the file
imports from its own folder are dropped from `sys.modules` first, so an edit
to a helper module is picked up too, and are reported as watched files.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
from pathlib import Path
from types import ModuleType

from flexilib.handlers.base import HandlerLoadError

__all__ = ["LoadedModule", "load_module"]

_counter = itertools.count(1)
_import_lock = threading.Lock()


class LoadedModule:
    """A module plus the files it was built from."""

    __slots__ = ("module", "files")

    def __init__(self, module: ModuleType, files: list[Path]) -> None:
        self.module = module
        self.files = files


def _siblings(folder: Path) -> list[str]:
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().parent == folder:
            names.append(name)
    return names


def load_module(path: str) -> LoadedModule:
    """Execute `path` as a new module; HandlerLoadError with the cause on failure."""
    file = Path(path)
    if not file.is_file():
        raise HandlerLoadError(f"cannot load {path}: no such file")
    folder = file.resolve().parent
    name = f"flexilib_handler_{file.stem}_{next(_counter)}"
    with _import_lock:
        for sibling in _siblings(folder):
            if not sibling.startswith("flexilib_handler_"):
                del sys.modules[sibling]
        if str(folder) not in sys.path:
            sys.path.append(str(folder))  # last: a handler folder must not shadow the stdlib
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise HandlerLoadError(f"cannot load {path}: not a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:  # SyntaxError, ImportError, SystemExit, ...
            raise HandlerLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.modules.pop(name, None)
        files = [file] + [
            Path(sys.modules[n].__file__)
            for n in _siblings(folder)
            if not n.startswith("flexilib_handler_")
        ]
    return LoadedModule(module, files)
