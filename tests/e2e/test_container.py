"""The container image, built from the repository's Dockerfile and run as the image says.

No Docker daemon and no image registry exist on these machines, and `podman run`
cannot set rlimits in this sandbox, so: the base image is made with debootstrap
(cached under /var/cache/flexilib-ci, about 90 s the first time), the image is built
with `podman build --isolation=chroot`, and it is run by mounting it
(`podman image mount`, read-only, like Kubernetes' readOnlyRootFilesystem) and
starting its ENTRYPOINT + CMD with chroot as its USER, in its WORKDIR, with its ENV,
a tmpfs on /tmp (the pod's emptyDir) and the host's /proc and /dev. The server then
listens on this machine's loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import REPO, free_port, wait_until

TOOLS = ("podman", "debootstrap", "chroot", "mount", "umount")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mounts need root (CI runs as root)"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS),
        reason=f"needs {', '.join(TOOLS)} (Debian packages podman, debootstrap; .ci/run installs them)",
    ),
    pytest.mark.timeout(1200),
]

CACHE = Path("/var/cache/flexilib-ci")
DEBOOTSTRAP = ["--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm"]
# This machine reaches package indexes through a TLS proxy whose CA is installed
# locally: the base image trusts the same extra CAs, or pip inside the build fails.
HOST_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
TAG = f"test-{os.getpid()}"


def podman(*args: str, timeout: float = 900) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def build(context: Path, tag: str, **build_args: str) -> float:
    """podman build the context's Dockerfile into `tag`; returns the seconds it took."""
    flags = [f"--build-arg={name}={value}" for name, value in build_args.items()]
    started = time.monotonic()
    # --format docker: the OCI format has no HEALTHCHECK and podman would drop it
    podman("build", "--isolation=chroot", "--format=docker", *flags, "-t", tag, str(context))
    return time.monotonic() - started


@pytest.fixture(scope="module")
def base_image() -> str:
    """A Debian bookworm image with python3, made once and cached outside the repository."""
    key = hashlib.sha256(" ".join(DEBOOTSTRAP).encode())
    for ca in HOST_CAS:
        key.update(ca.read_bytes())
    name = f"localhost/bookworm-py:local-{key.hexdigest()[:12]}"
    if subprocess.run(["podman", "image", "exists", name]).returncode == 0:
        return name
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"bookworm-py-{key.hexdigest()[:12]}.tar"
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            root = Path(scratch) / "root"
            subprocess.run(
                ["debootstrap", *DEBOOTSTRAP, str(root)],
                check=True,
                capture_output=True,
                timeout=900,
            )
            for ca in HOST_CAS:
                shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
            subprocess.run(
                ["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True
            )
            partial = Path(scratch) / "base.tar"
            subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
            os.replace(partial, tarball)  # whole or absent, for a run that starts meanwhile
    podman("import", str(tarball), name)
    return name


@pytest.fixture(scope="module")
def image(base_image) -> Iterator[str]:
    name = f"localhost/flexilib:{TAG}"
    seconds = build(REPO, name, BASE=base_image)
    print(f"\n{name}: built in {seconds:.1f} s from {base_image}")
    yield name
    podman("rmi", name)


@pytest.fixture(scope="module")
def derived_image(image) -> Iterator[str]:
    name = f"localhost/flexilib-derived:{TAG}"
    seconds = build(REPO / "examples" / "container", name, FLEXILIB_IMAGE=image)
    print(f"\n{name}: built in {seconds:.1f} s")
    yield name
    podman("rmi", name)


def inspect(image: str) -> dict:
    return json.loads(podman("image", "inspect", image))[0]


def config(image: str) -> dict:
    return inspect(image)["Config"]


def image_healthcheck(image: str) -> list[str]:
    """The HEALTHCHECK's command line (podman keeps it beside Config, not in it)."""
    test = inspect(image)["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    return test[1:]


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    """The image's root, read-only, with what a container runtime adds: /proc, /dev, a /tmp."""
    root = Path(podman("image", "mount", image))
    with ExitStack() as undo:
        undo.callback(podman, "image", "unmount", image)
        for args, target in (
            (["-t", "proc", "proc"], "proc"),
            (["--bind", "/dev"], "dev"),
            (["-t", "tmpfs", "-o", "mode=1777", "tmpfs"], "tmp"),
        ):
            subprocess.run(["mount", *args, str(root / target)], check=True)
            undo.callback(subprocess.run, ["umount", str(root / target)], check=True)
        yield root


def in_image(root: Path, cfg: dict, command: list[str], env: dict[str, str]) -> list[str]:
    """A command line that runs `command` in the mounted image as its USER, WORKDIR and ENV."""
    image_env = [*cfg.get("Env", []), *(f"{k}={v}" for k, v in env.items())]
    return [
        "chroot",
        f"--userspec={cfg['User']}",
        str(root),
        "env",
        "-i",
        f"--chdir={cfg['WorkingDir']}",
        *image_env,
        *command,
    ]


@dataclass
class Running:
    url: str
    admin: str  # HOST:PORT of the admin listener
    process: subprocess.Popen
    root: Path


@contextmanager
def serving(image: str, folder: Path) -> Iterator[Running]:
    """The image's ENTRYPOINT + CMD running on a free loopback port, stopped afterwards."""
    cfg = config(image)
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    env = {
        "PORT": str(port),
        "SERVER_ADDRESS": "127.0.0.1",  # the chroot shares this machine's network
        "SERVER_ADMIN": admin,
        "SERVER_THREAD_COUNT": "2",
    }
    stderr = folder / f"{image.rpartition('/')[2]}.stderr"
    with mounted(image) as root, stderr.open("wb") as log:
        process = subprocess.Popen(
            in_image(root, cfg, [*cfg["Entrypoint"], *cfg["Cmd"]], env),
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"exited {process.returncode}:\n{stderr.read_text()}")
                return "serving" in stderr.read_text()

            wait_until(ready, 30, what="flexilib serving from the image")
            yield Running(f"http://127.0.0.1:{port}", admin, process, root)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def uids(pid: int) -> set[int]:
    """The real and effective uids of a process and its children, from /proc."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    found = set()
    for each in [pid, *map(int, children.split())]:
        status = Path(f"/proc/{each}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        found.update(int(value) for value in line.split()[1:3])
    return found


def test_image_serves_the_examples_as_a_non_root_user(image, tmp_path, record_property):
    cfg = config(image)
    assert cfg["Entrypoint"] == ["flexilib"] and cfg["Cmd"] == ["serve"]
    assert {"8069/tcp", "8070/tcp"} <= set(cfg["ExposedPorts"])
    uid = int(cfg["User"].split(":")[0])
    assert uid != 0
    record_property("image_bytes", inspect(image)["Size"])
    with serving(image, tmp_path) as running:
        get = lambda path, **h: requests.get(running.url + path, headers=h, timeout=10)  # noqa: E731
        assert get("/", Host="iam").text == "iam response"
        assert get("/").text.strip().isdigit()
        assert get("/c").text == "hello from C"
        assert get("/py").text.startswith("hello world from Python")
        assert get("/lambda?name=you").json()["message"] == "hello you"
        assert get("/worker").json()["hello"] == "flexilib"
        assert uids(running.process.pid) == {uid}
        # the runtime stage got the wheels only: no compiler, no pip
        assert not (running.root / "usr/bin/gcc").exists()
        assert not list(running.root.glob("opt/flexilib/lib/python3*/site-packages/pip"))


@contextmanager
def answering(status: int) -> Iterator[int]:
    """A loopback HTTP server answering every GET with `status`: stands in for the admin
    listener, to check the HEALTHCHECK command's own logic; the real one is tested below."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()
            self.server.paths.append(self.path)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_command_asks_healthz_on_the_admin_port(image):
    """exit 0 on a 200 from /healthz; non-zero on a 503 or when nothing listens. A listener
    on 0.0.0.0 (as in a pod) is asked on loopback."""
    cfg = config(image)
    command = image_healthcheck(image)
    with mounted(image) as root:

        def probe(admin: str) -> subprocess.CompletedProcess:
            line = in_image(root, cfg, command, {"SERVER_ADMIN": admin})
            return subprocess.run(line, capture_output=True, text=True, timeout=30)

        with answering(200) as healthy:
            assert probe(f"0.0.0.0:{healthy.server_port}").returncode == 0
            assert healthy.paths == ["/healthz"]
        with answering(503) as draining:
            failed = probe(f"127.0.0.1:{draining.server_port}")
            assert failed.returncode != 0 and "503" in failed.stderr
        refused = probe(f"127.0.0.1:{free_port()}")
        assert refused.returncode != 0 and "Connection refused" in refused.stderr


def test_healthcheck_passes_against_the_running_server(image, tmp_path):
    """The image's own HEALTHCHECK, run inside it while it serves, against /healthz."""
    cfg = config(image)
    with mounted(image) as root:
        usage = in_image(root, cfg, [*cfg["Entrypoint"], "serve", "--help"], {})
        help_text = subprocess.run(usage, capture_output=True, text=True, timeout=30).stdout
    if "--admin" not in help_text:
        pytest.skip("the admin listener (/healthz, issue 13) is not in this tree yet")
    with serving(image, tmp_path) as running:
        assert requests.get(f"http://{running.admin}/healthz", timeout=5).status_code == 200
        probe = in_image(
            running.root, cfg, image_healthcheck(image), {"SERVER_ADMIN": running.admin}
        )
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr


def test_derived_image_adds_a_handler(derived_image, tmp_path):
    with serving(derived_image, tmp_path) as running:
        greeting = requests.get(running.url + "/greet?name=k8s", timeout=10).text
        assert greeting == "greetings, k8s, from a derived image\n"
        assert requests.get(running.url + "/c", timeout=10).text == "hello from C"
