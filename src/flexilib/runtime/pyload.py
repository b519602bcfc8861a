"""Loading a Python file as a fresh module, shared by every Python-based kind.

Each load executes the file in a new module object under a unique name, so
a reload never sees the previous version's globals. Sibling modules the file
imports from its own folder are dropped from `sys.modules` first, so an edit
to a helper module is picked up too, and are reported as watched files.

Handler files and their siblings are always compiled from the source, never
from `__pycache__`: a bytecode cache is checked against the source's mtime in
whole seconds and its size, so a same-size edit within a second (`v1` -> `v2`)
would load the old code.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from flexilib.runtime.handler import HandlerLoadError

__all__ = ["LoadedModule", "load_function", "load_module"]

_counter = itertools.count(1)
_import_lock = threading.Lock()


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """A source file loader that compiles every time and writes no bytecode cache."""

    def get_code(self, fullname: str):
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


_LOADERS = (
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (_SourceLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
)
_finders: dict[str, importlib.machinery.FileFinder] = {}


def _use_folder(folder: Path) -> None:
    """Let the handler import from its folder, through a finder that compiles from source."""
    entry = str(folder)
    finder = _finders.get(entry)
    if finder is None:
        finder = _finders[entry] = importlib.machinery.FileFinder(entry, *_LOADERS)
    sys.path_importer_cache[entry] = finder
    finder.invalidate_caches()  # a sibling may have been added since the last load
    if entry not in sys.path:
        sys.path.append(entry)  # last: a handler folder must not shadow the stdlib


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
        _use_folder(folder)
        spec = importlib.util.spec_from_file_location(
            name, file, loader=_SourceLoader(name, str(file))
        )
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


def load_function(path: str, name: str) -> tuple[Callable, list[Path]]:
    """Load `path` and return its function `name` and the files it was built from."""
    loaded = load_module(path)
    func = getattr(loaded.module, name, None)
    if not callable(func):
        raise HandlerLoadError(f"cannot load {path}: no function {name}()")
    return func, loaded.files
