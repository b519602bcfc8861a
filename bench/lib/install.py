"""Installs what the suite needs when it is missing, and nothing when it is there.

- Debian packages `wrk` and `nginx` (one `apt-get update`, then `apt-get install -y`).
  A policy-rc.d is put in place for the install only, so the package does not
  start a system nginx on port 80.
- A venv at bench/.venv with the peers (uvicorn, granian), their fast paths
  (uvloop, httptools), awslambdaric (the Lambda runtime client for the
  `lambda-runtime:` scenario), and flexilib itself from this repository (editable).
- The example libraries (`make -C examples c`, for lib/libsample.so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
PEER_PACKAGES = ("uvicorn", "granian", "httptools", "uvloop", "awslambdaric", "wasmtime")
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _say(message: str) -> None:
    print(f"[install] {message}", flush=True)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def ensure_system_packages() -> None:
    missing = [
        name
        for name, found in (("wrk", shutil.which("wrk")), ("nginx", nginx_binary()))
        if not found
    ]
    for tool in ("curl", "gcc", "make"):
        if not shutil.which(tool):
            missing.append(tool)
    if not missing:
        return
    _say(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    created_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        created_policy = True
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if created_policy:
            POLICY_RC.unlink()


def _venv_ok(code: str) -> bool:
    return (
        VENV_PYTHON.exists()
        and subprocess.run([str(VENV_PYTHON), "-c", code], capture_output=True).returncode == 0
    )


def ensure_venv() -> None:
    if not VENV_PYTHON.exists():
        _say(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not _venv_ok("import " + ", ".join(PEER_PACKAGES)):
        _say("pip install " + " ".join(PEER_PACKAGES))
        subprocess.run([*pip, *PEER_PACKAGES], check=True)
    src = REPO / "src"
    check = f"import flexilib, pathlib; assert pathlib.Path(flexilib.__file__).is_relative_to({str(src)!r})"
    # an editable install follows the code but not new dependencies: re-install when
    # pyproject.toml is not the one installed (a venv from before `sam:` lacked pyyaml)
    stamp = VENV / "flexilib-pyproject.toml"
    pyproject = (REPO / "pyproject.toml").read_bytes()
    if not _venv_ok(check) or not stamp.exists() or stamp.read_bytes() != pyproject:
        _say(f"pip install -e {REPO}")
        subprocess.run([*pip, "-e", str(REPO)], check=True)
        stamp.write_bytes(pyproject)


def build_examples() -> Path:
    """Builds the C example libraries; returns the path of the sample library."""
    subprocess.run(["make", "-s", "-C", str(REPO / "examples"), "c"], check=True)
    return REPO / "lib" / "libsample.so"


def flexilib_missing() -> str | None:
    """Why flexilib cannot be started yet, or None when its command line imports."""
    out = subprocess.run(
        [str(VENV_PYTHON), "-c", "import flexilib.cli"], capture_output=True, text=True
    )
    if out.returncode == 0 and (VENV / "bin" / "flexilib").exists():
        return None
    lines = out.stderr.strip().splitlines()
    return lines[-1] if lines else "bench/.venv/bin/flexilib is missing"


def ensure_all() -> Path:
    """Everything above; returns the sample library's path."""
    ensure_system_packages()
    ensure_venv()
    return build_examples()
