"""Path normalisation (`flexilib.http.target`), case by case."""

from __future__ import annotations

import pytest

from flexilib.http.target import normalize_path


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        (b"/", b"/"),
        (b"/a/b", b"/a/b"),
        (b"//admin", b"/admin"),
        (b"/./admin", b"/admin"),
        (b"/x/../admin", b"/admin"),
        (b"/%61dmin", b"/admin"),
        (b"/%2e%2E/", None),
        (b"/a/%2e%2e/b", b"/b"),
        (b"/a/b/", b"/a/b/"),
        (b"/a/.", b"/a/"),
        (b"/a/b/..", b"/a/"),
        (b"/a/..", b"/"),
        (b"/%7e%41%2d%5F", b"/~A-_"),
        (b"/a%20b%3f", b"/a%20b%3F"),  # reserved or unsafe: kept escaped, hex upper-cased
        (b"*", b"*"),
        (b"http://h/x/../y", b"http://h/x/../y"),  # absolute form: no rule matches it anyway
    ],
)
def test_normal_forms(path, normal):
    if normal is None:
        with pytest.raises(ValueError):
            normalize_path(path)
    else:
        assert normalize_path(path) == normal


@pytest.mark.parametrize(
    "path", [b"/..", b"/a/../..", b"/a%2fb", b"/a%2Fb", b"/a%00", b"/a%", b"/a%4", b"/a%g0"]
)
def test_rejected(path):
    with pytest.raises(ValueError):
        normalize_path(path)
