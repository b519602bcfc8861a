"""Loading Python handler code, one private module namespace per loaded version.

Every Python-based kind (python, lambda, worker, and the functions of a SAM
template) loads its file through `load_module`. Three things are wanted, as
on AWS Lambda where each function has its own process and `/var/task` is
first on `sys.path`:

- the handler file runs as the module it is (`app.py` is `app`, so logger
  names, pickling and `Flask(__name__)` behave), and imports whatever its
  folder holds, at any depth (`utils`, `lib/`, a Django project, a vendored
  dependency, which wins over the server's installed copy);
- two functions whose folders both hold `app.py` and `utils.py` never see each
  other's modules;
- a reload re-imports everything the function imported from its folder, so
  an edit to `pkg/views.py` counts as much as one to the handler file; every
  `.py` file of the folder is watched (up to MAX_WATCHED), including modules
  imported only when a request needs them.

How. A `Namespace` is one loaded version of one function: its folder and the
modules it imported from there, by their plain names. `sys.modules` holds, for
such a name, a `_Switch`: a module object that forwards every attribute access
to the module of the *current* namespace, a context variable the kinds set
around the load and each call (`with namespace:`). Both `import utils` (served
from `sys.modules`) and string imports (`importlib.import_module`, Django's
`INSTALLED_APPS`, pickle) reach the switch, and a meta-path finder placed first
on `sys.meta_path` imports a name the current function's folder holds into
that function's namespace. Outside any function (a thread the function
started itself) a switch answers with the module loaded last under that name.
A module that existed before a function's folder shadowed it (an installed
`requests` next to a vendored one) stays the answer for everyone else.

Cost, in CPU time on the 2-core bench machine (Python 3.11): entering and
leaving the namespace is one context variable set/reset, 0.27 us per call; an
attribute read through a switch (`utils.helper` after `import utils`) costs
0.33 us more than a plain module's (0.37 against 0.04 us); names imported with
`from utils import helper` cost nothing per call. Subinterpreters (no shared
C extensions in 3.11) and a process per function (an IPC round trip per call,
the `lambda-runtime:` cost) were the alternatives.

Limits: a function's `import x` of a name only another function's folder
holds succeeds (the switch is in `sys.modules`) but its first use raises
ModuleNotFoundError naming the function's folder; C extensions in a function
folder are shared by name (CPython loads one per process); folders without
`__init__.py` (namespace packages) are not imported from a function folder;
process-wide registries keyed by name stay shared (two functions' `app` modules
get the same `logging.getLogger("app")`).

Sources are always compiled, never read from `__pycache__`: a bytecode cache is
checked against the source's mtime in whole seconds and its size, so a
same-size edit within a second (`v1` -> `v2`) would load the old code.
"""

from __future__ import annotations

import contextvars
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from flexilib.runtime.handler import HandlerLoadError

__all__ = ["LoadedModule", "Namespace", "folder_files", "load_function", "load_module"]

MAX_WATCHED = 1000  # files watched per function folder; a vendored SDK can hold thousands
_SKIPPED_SUFFIXES = (".pyc", ".log")


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
# names a function folder never takes over: the standard library and what flexilib provides
_NEVER_OWNED = frozenset(sys.stdlib_module_names) | {"flexilib", "workers", "asgi", "js"}

_current: contextvars.ContextVar[Namespace | None] = contextvars.ContextVar(
    "flexilib_namespace", default=None
)
_publish_lock = threading.Lock()
_globals: dict[str, ModuleType] = {}  # modules a function folder shadowed, for everyone else
_last: dict[str, ModuleType] = {}  # name -> the module loaded last under it (no namespace)


class _Switch(ModuleType):
    """What `sys.modules[name]` holds for a function module: the current function's module."""

    def __getattribute__(self, attr: str) -> Any:
        return getattr(_resolve(ModuleType.__getattribute__(self, "__name__")), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr != "__spec__":  # the import system re-stamps a module it returns: not ours
            setattr(_resolve(ModuleType.__getattribute__(self, "__name__")), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(_resolve(ModuleType.__getattribute__(self, "__name__")), attr)


def _resolve(name: str) -> ModuleType:
    namespace = _current.get()
    if namespace is not None:
        module = namespace.modules.get(name)
        if module is not None:
            return module
        if namespace.owns(name):
            module = namespace.ensure(name)
            if module is not None:
                return module
    module = _globals.get(name)
    if module is not None:
        return module
    if namespace is None:
        module = _last.get(name)
        if module is not None:
            return module
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    raise ModuleNotFoundError(
        f"No module named {name!r} in function folder {namespace.folder}", name=name
    )


def _publish(name: str) -> None:
    """Make `sys.modules[name]` a switch, keeping a module already there for everyone else."""
    with _publish_lock:
        existing = sys.modules.get(name)
        if type(existing) is _Switch:
            return
        if existing is not None:
            _globals[name] = existing
            for other, module in list(sys.modules.items()):  # its submodules: switched too
                if other.startswith(name + ".") and type(module) is not _Switch:
                    _globals[other] = module
                    sys.modules[other] = _Switch(other)
        sys.modules[name] = _Switch(name)


class _SwitchLoader:
    """Loads a name the current namespace owns: the switch goes to sys.modules, the module
    into the namespace."""

    def __init__(self, namespace: Namespace) -> None:
        self._namespace = namespace

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _publish(spec.name)
        return sys.modules[spec.name]

    def exec_module(self, module: ModuleType) -> None:
        name = ModuleType.__getattribute__(module, "__name__")
        if self._namespace.ensure(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.modules[name] = module  # the machinery may have dropped it on an earlier failure


class _Finder:
    """First on sys.meta_path: a name the current function's folder holds comes from there."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None):
        namespace = _current.get()
        if namespace is None or not namespace.owns(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, _SwitchLoader(namespace))

    @staticmethod
    def invalidate_caches() -> None:
        pass


def _install_finder() -> None:
    with _publish_lock:
        if _Finder not in sys.meta_path:
            sys.meta_path.insert(0, _Finder)


class Namespace:
    """One loaded version of one function: its folder and the modules it imported from it.

    `with namespace:` makes it current for the code running in this thread or task.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.modules: dict[str, ModuleType] = {}
        self._finders: dict[str, importlib.machinery.FileFinder] = {}
        self._lock = threading.RLock()
        self._tokens: list[contextvars.Token] = []
        _install_finder()
        self._shadow_loaded()

    def _shadow_loaded(self) -> None:
        """Names this folder holds that the process imported already (a vendored `requests`
        next to the installed one): switched, so this function's `import` finds its own."""
        try:
            entries = os.listdir(self.folder)
        except OSError:
            return
        for entry in entries:
            name = entry.partition(".")[0]
            existing = sys.modules.get(name)
            if existing is None or type(existing) is _Switch or not name.isidentifier():
                continue
            if name not in _NEVER_OWNED and self._spec(name) is not None:
                _publish(name)

    def __enter__(self) -> Namespace:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._tokens.pop())

    def enter(self) -> contextvars.Token:
        """Make this namespace current; `leave(token)` undoes it (for concurrent callers)."""
        return _current.set(self)

    @staticmethod
    def leave(token: contextvars.Token) -> None:
        _current.reset(token)

    def _finder(self, entry: str) -> importlib.machinery.FileFinder:
        finder = self._finders.get(entry)
        if finder is None:
            finder = self._finders[entry] = importlib.machinery.FileFinder(entry, *_LOADERS)
        return finder

    def owns(self, name: str) -> bool:
        """Whether `name` is (or would be) a module of this function's folder."""
        if name in self.modules:
            return True
        top, dot, _ = name.partition(".")
        if top in _NEVER_OWNED:
            return False
        if dot:
            return self.owns(top) and self._spec(name) is not None
        return self._spec(name) is not None

    def _spec(self, name: str) -> importlib.machinery.ModuleSpec | None:
        parent, _, _ = name.rpartition(".")
        if parent:
            module = self.ensure(parent)
            locations = getattr(module, "__path__", None) if module is not None else None
        else:
            locations = [str(self.folder)]
        for entry in locations or ():
            spec = self._finder(entry).find_spec(name)
            if spec is not None and spec.loader is not None:
                return spec
        return None

    def ensure(self, name: str, file: Path | None = None) -> ModuleType | None:
        """This namespace's module `name`, imported on first use (None: the folder has none)."""
        module = self.modules.get(name)
        if module is not None:
            return module
        with self._lock:
            module = self.modules.get(name)
            if module is not None:
                return module
            if file is not None:
                spec = importlib.util.spec_from_file_location(
                    name, file, loader=_SourceLoader(name, str(file))
                )
            else:
                spec = self._spec(name)
            if spec is None:
                return None
            module = importlib.util.module_from_spec(spec)
            self.modules[name] = module
            _publish(name)
            token = _current.set(self)
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del self.modules[name]
                raise
            finally:
                _current.reset(token)
            _last[name] = module
            parent, _, child = name.rpartition(".")
            if parent and parent in self.modules:
                setattr(self.modules[parent], child, module)
            return module

    def files(self) -> list[Path]:
        """The source files of every module this namespace imported from its folder."""
        found = []
        for module in list(self.modules.values()):
            file = getattr(module, "__file__", None)
            if file:
                found.append(Path(file))
        return found


class LoadedModule:
    """A module, the files it was built from, and the namespace its code runs in."""

    __slots__ = ("module", "files", "namespace")

    def __init__(self, module: ModuleType, files: list[Path], namespace: Namespace) -> None:
        self.module = module
        self.files = files
        self.namespace = namespace


def folder_files(folder: Path, suffix: str | None = None) -> list[Path]:
    """The files of a function's folder, recursively (no dot files, `__pycache__`, `*.pyc`,
    `*.log`), only those ending in `suffix` if given; at most MAX_WATCHED."""
    files: list[Path] = []
    for where, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(names):
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            if suffix is None or name.endswith(suffix):
                files.append(Path(where, name))
                if len(files) >= MAX_WATCHED:
                    return files
    return files


def load_module(path: str | Path) -> LoadedModule:
    """Execute `path` as module `<stem>` in a new namespace of its folder; HandlerLoadError
    with the cause on failure."""
    file = Path(path)
    if not file.is_file():
        raise HandlerLoadError(f"cannot load {path}: no such file")
    if file.suffix != ".py":
        raise HandlerLoadError(f"cannot load {path}: not a Python source file")
    file = file.resolve()
    namespace = Namespace(file.parent)
    try:
        module = namespace.ensure(file.stem, file)
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit, ...
        raise HandlerLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    # what it imported, and every other .py of its folder: a module imported only when a
    # request needs it (Django's views) must reload the function too
    files = dict.fromkeys([file, *namespace.files(), *folder_files(file.parent, ".py")])
    return LoadedModule(module, list(files), namespace)


def load_function(path: str | Path, name: str) -> tuple[Callable, LoadedModule]:
    """Load `path` and return its function `name` and what it was loaded as."""
    loaded = load_module(path)
    func = getattr(loaded.module, name, None)
    if not callable(func):
        raise HandlerLoadError(f"cannot load {path}: no function {name}()")
    return func, loaded
