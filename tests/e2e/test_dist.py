"""`make dist` twice, from two clean clones in different folders: byte-identical artifacts."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

VENV = Path(sys.prefix)


def make_dist(clone: Path) -> Path:
    """Run the Makefile's dist target with this test run's venv (which has `build`).

    `-o .installed` keeps make from reinstalling that venv from the clone's pyproject.toml.
    """
    done = subprocess.run(
        ["make", "-s", "-o", f"{VENV}/.installed", "dist", f"VENV={VENV}"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return clone / "dist"


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> tuple[Path, Path]:
    builds = []
    for name in ("first", "second-in-another-folder"):
        clone = tmp_path_factory.mktemp("dist") / name
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        builds.append(make_dist(clone))
    return builds[0], builds[1]


def commit_time(clone: Path) -> int:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=clone, capture_output=True, text=True
    )
    return int(out.stdout)


def test_two_clean_builds_are_identical(two_builds):
    first, second = two_builds
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert sum(n.endswith(".tar.gz") for n in names) == 1
    assert sum(n.endswith(".whl") for n in names) == 1
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_checksums_cover_and_match_the_artifacts(two_builds):
    dist = two_builds[0]
    listed = (dist / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in listed) == sorted(
        p.name for p in dist.iterdir() if p.name != "SHA256SUMS"
    )
    check = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=dist)
    assert check.returncode == 0


def test_every_timestamp_is_the_last_commit(two_builds):
    dist = two_builds[0]
    epoch = commit_time(dist.parent)
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        members = sdist.getmembers()
        assert {m.mtime for m in members} == {epoch}
        assert {(m.uid, m.gid) for m in members} == {(0, 0)}
        assert any(m.name.endswith("/include/flexilib.h") for m in members)
    with zipfile.ZipFile(next(dist.glob("*.whl"))) as wheel:
        stamps = {info.date_time for info in wheel.infolist()}
    # the wheel stores UTC at the zip format's 2 s resolution
    assert stamps == {time.gmtime(epoch - epoch % 2)[:6]}


def test_wheel_carries_a_working_extension(two_builds, tmp_path):
    wheel = next(two_builds[0].glob("*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
        check=True,
    )
    probe = "import flexilib.kinds.native._native as n, sys; print(n.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(target))
