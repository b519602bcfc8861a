"""Per-function module namespaces (runtime/pyload.py): isolation, depth, names, precedence."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from flexilib.runtime.handler import HandlerLoadError
from flexilib.runtime.pyload import Namespace, load_function


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


APP = """
import utils
from lib.deep import value
def handler():
    return utils.WHO, value(), __name__
"""


@pytest.fixture
def two(tmp_path):
    a = write(
        tmp_path / "a",
        {
            "app.py": APP,
            "utils.py": "WHO = 'a'",
            "lib/__init__.py": "",
            "lib/deep.py": "def value():\n    return 'a-deep'",
        },
    )
    b = write(
        tmp_path / "b",
        {
            "app.py": APP,
            "utils.py": "WHO = 'b'",
            "lib/__init__.py": "",
            "lib/deep.py": "def value():\n    return 'b-deep'",
        },
    )
    return load_function(a / "app.py", "handler"), load_function(b / "app.py", "handler")


def call(loaded):
    func, info = loaded
    with info.namespace:
        return func()


def test_each_function_runs_its_own_modules(two):
    a, b = two
    assert call(a) == ("a", "a-deep", "app")
    assert call(b) == ("b", "b-deep", "app")
    assert call(a) == ("a", "a-deep", "app")


def test_every_module_of_the_folder_is_watched(two):
    (_, info), _ = two
    names = {path.name for path in info.files}
    assert {"app.py", "utils.py", "__init__.py", "deep.py"} <= names


def test_concurrent_calls_stay_apart(two):
    a, b = two
    results: list[tuple] = []

    def run(loaded, expected):
        for _ in range(200):
            results.append((call(loaded), expected))

    threads = [threading.Thread(target=run, args=(x, x_id)) for x, x_id in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result[0] == expected for result, expected in results)


def test_a_reload_imports_every_module_fresh(tmp_path):
    root = write(
        tmp_path / "r",
        {
            "app.py": APP,
            "utils.py": "WHO = 1",
            "lib/__init__.py": "",
            "lib/deep.py": "def value():\n    return 1",
        },
    )
    first = load_function(root / "app.py", "handler")
    (root / "lib" / "deep.py").write_text("def value():\n    return 2")
    second = load_function(root / "app.py", "handler")
    assert call(first)[1] == 1  # the old version keeps its own modules while it drains
    assert call(second)[1] == 2


def test_the_function_folder_comes_before_installed_packages(tmp_path):
    import json  # noqa: F401 - stdlib names are never taken over

    root = write(
        tmp_path / "v",
        {
            "app.py": "import pytest, json\ndef handler():\n    return pytest.MINE, json.__name__",
            "pytest/__init__.py": "MINE = 'vendored'",
        },
    )
    func, info = load_function(root / "app.py", "handler")
    with info.namespace:
        assert func() == ("vendored", "json")
    assert pytest.main is not None  # everyone else still gets the installed pytest
    assert sys.modules["pytest"].main is pytest.main


def test_another_functions_module_is_not_reachable(two, tmp_path):
    c = write(tmp_path / "c", {"app.py": "def handler():\n    import utils\n    return utils.WHO"})
    func, info = load_function(c / "app.py", "handler")
    with info.namespace, pytest.raises(ModuleNotFoundError, match="function folder"):
        func()


def test_load_errors_name_the_cause(tmp_path):
    root = write(tmp_path / "e", {"app.py": "import helper", "helper.py": "1/0"})
    with pytest.raises(HandlerLoadError, match="ZeroDivisionError"):
        load_function(root / "app.py", "handler")
    with pytest.raises(HandlerLoadError, match="no such file"):
        load_function(root / "none.py", "handler")


def test_enter_and_leave_nest(two):
    (_, a), (_, b) = two
    token = a.namespace.enter()
    with b.namespace:
        assert sys.modules["utils"].WHO == "b"
    assert sys.modules["utils"].WHO == "a"
    Namespace.leave(token)
