"""The servers of the suite: how each is configured and started, and what it runs.

A Target is one server configuration. `start` brings up its processes on free
loopback ports (the measured server last, any upstream it needs before it);
`scenarios` names what run.py measures on it. Optional targets exercise
flexilib features that may not exist yet: when such a server refuses its
config (exit status 2) or answers non-200, the target is skipped, not failed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peers import nginx

from lib import install
from lib.procs import ServerProcess, free_port

BENCH = install.BENCH
VENV_BIN = install.VENV / "bin"
HANDLERS = BENCH / "handlers"


@dataclass
class Target:
    key: str
    label: str
    access_log: str  # how the access log is set, as the table states it
    start: Callable[[Path], list[ServerProcess]]
    scenarios: tuple[str, ...]
    optional: bool = False
    flexilib: bool = False
    full_only: bool = False  # issue 4 and 5 extras, left out of --quick and --smoke
    once: bool = False  # runs in the first round only (a long run of its own)
    swap: str | None = None  # kind of handler the `swap` scenario rewrites
    log_file: Callable[[ServerProcess, Path], Path] = field(
        default=lambda proc, workdir: proc.stdout_path
    )


# -- peers -------------------------------------------------------------------


def _start_nginx_return(workdir: Path, name: str = "nginx") -> ServerProcess:
    prefix = workdir / name
    port = free_port()
    conf = nginx.write_return_config(prefix, port, prefix / "access.log")
    argv = [
        install.nginx_binary(),
        "-p",
        str(prefix),
        "-c",
        str(conf),
        "-e",
        str(prefix / "error.log"),
    ]
    return ServerProcess(name, argv, port, workdir)


def _nginx_log(proc: ServerProcess, workdir: Path) -> Path:
    return workdir / proc.name / "access.log"


def start_nginx(workdir: Path) -> list[ServerProcess]:
    return [_start_nginx_return(workdir)]


def start_bare(workdir: Path) -> list[ServerProcess]:
    port = free_port()
    argv = [str(VENV_BIN / "python"), str(BENCH / "peers" / "bare.py"), "--port", str(port)]
    return [ServerProcess("bare", argv, port, workdir)]


def uvicorn(access_log: bool) -> Callable[[Path], list[ServerProcess]]:
    def start(workdir: Path) -> list[ServerProcess]:
        port = free_port()
        argv = [
            str(VENV_BIN / "uvicorn"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--loop", "uvloop", "--http", "httptools", "--lifespan", "off"),
            "--access-log" if access_log else "--no-access-log",
            *("--app-dir", str(BENCH), "peers.asgi_app:app"),
        ]
        return [ServerProcess("uvicorn", argv, port, workdir)]

    return start


def granian(access_log: bool) -> Callable[[Path], list[ServerProcess]]:
    def start(workdir: Path) -> list[ServerProcess]:
        port = free_port()
        argv = [
            str(VENV_BIN / "granian"),
            *("--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--loop", "uvloop", "--http", "1", "--working-dir", str(BENCH)),
            "--access-log" if access_log else "--no-access-log",
            "peers.rsgi_app:app",
        ]
        return [ServerProcess("granian", argv, port, workdir)]

    return start


def start_nginx_proxy(workdir: Path) -> list[ServerProcess]:
    upstream = _start_nginx_return(workdir, "upstream-for-nginx-proxy")
    prefix = workdir / "nginx-proxy"
    port = free_port()
    conf = nginx.write_proxy_config(prefix, port, upstream.port, prefix / "access.log")
    argv = [
        install.nginx_binary(),
        "-p",
        str(prefix),
        "-c",
        str(conf),
        "-e",
        str(prefix / "error.log"),
    ]
    return [upstream, ServerProcess("nginx-proxy", argv, port, workdir)]


# -- flexilib ----------------------------------------------------------------


def _flexilib(
    workdir: Path, name: str, rules: list[str], workers: int = 1, admin: bool = True
) -> ServerProcess:
    """flexilib serving `rules` (proxy.ini lines) from a config in its own directory.

    Its admin port (metrics on, as by default) is a free port of its own; `admin=False`
    turns it off (`SERVER_ADMIN=off`), the baseline of the metrics' cost.
    """
    confdir = workdir / name
    confdir.mkdir(parents=True, exist_ok=True)
    config = confdir / "proxy.ini"
    config.write_text("\n".join(rules) + "\n")
    port = free_port()
    argv = [str(VENV_BIN / "flexilib"), "serve", "--config", str(config)]
    argv += ["--port", str(port), "--address", "127.0.0.1"]
    env = {"PORT": str(port), "SERVER_WORKERS": str(workers)}
    env["SERVER_ADMIN"] = f"127.0.0.1:{free_port()}" if admin else "off"
    return ServerProcess(name, argv, port, workdir, env=env, cwd=confdir)


def _write_bootstrap(directory: Path, module: str) -> Path:
    """A Lambda custom runtime `bootstrap`: awslambdaric from the bench venv running module.handler."""
    bootstrap = directory / "bootstrap"
    bootstrap.write_text(
        "#!/bin/sh\n"
        'cd "$(dirname "$0")"\n'
        f'exec "{VENV_BIN / "python"}" -m awslambdaric {module}.handler\n'
    )
    bootstrap.chmod(0o755)
    return bootstrap


def flexilib_native(
    sample: Path, name: str, workers: int = 1, admin: bool = True
) -> Callable[[Path], list[ServerProcess]]:
    """flexilib serving the bundled sample library at `/`."""

    def start(workdir: Path) -> list[ServerProcess]:
        return [_flexilib(workdir, name, [f"/ = {sample}"], workers, admin)]

    return start


def start_flexilib_python(workdir: Path) -> list[ServerProcess]:
    return [_flexilib(workdir, "flexilib-python", [f"/ = {HANDLERS / 'hello.py'}"])]


def start_flexilib_lambda(workdir: Path) -> list[ServerProcess]:
    rule = f"/ = lambda:{HANDLERS / 'lambda_hello.py'}:handler"
    return [_flexilib(workdir, "flexilib-lambda", [rule])]


def start_flexilib_lambda_runtime(workdir: Path) -> list[ServerProcess]:
    fn = workdir / "lambda-runtime-fn"
    fn.mkdir(parents=True, exist_ok=True)
    shutil.copy(HANDLERS / "lambda_hello.py", fn / "lambda_hello.py")
    bootstrap = _write_bootstrap(fn, "lambda_hello")
    return [_flexilib(workdir, "flexilib-lambda-runtime", [f"/ = lambda-runtime:{bootstrap}"])]


_SAM_TEMPLATE = """\
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: {module}.handler
      Runtime: python3.11
      Events:
        Root: {{Type: HttpApi, Properties: {{Path: /, Method: GET}}}}
"""


def _write_sam(directory: Path, module: str) -> Path:
    """A SAM template with one in-process function, `fn/<module>.py`, on `GET /` (HttpApi)."""
    template = directory / "template.yaml"
    template.write_text(_SAM_TEMPLATE.format(module=module))
    return template


def start_flexilib_sam(workdir: Path) -> list[ServerProcess]:
    app = workdir / "sam-app"
    (app / "fn").mkdir(parents=True, exist_ok=True)
    shutil.copy(HANDLERS / "lambda_hello.py", app / "fn" / "lambda_hello.py")
    template = _write_sam(app, "lambda_hello")
    return [_flexilib(workdir, "flexilib-sam", [f"/ = sam:{template}"])]


def start_flexilib_proxy(workdir: Path) -> list[ServerProcess]:
    upstream = _start_nginx_return(workdir, "upstream-for-flexilib-proxy")
    proxy = _flexilib(workdir, "flexilib-proxy", [f"/ = http://127.0.0.1:{upstream.port}"])
    return [upstream, proxy]


def start_flexilib_wasm(workdir: Path) -> list[ServerProcess]:
    rule = f"/ = wasm:{HANDLERS / 'hello_wagi.wat'}"
    return [_flexilib(workdir, "flexilib-wasm", [rule])]


# -- hot reload: handlers rewritten while the server runs ----------------------

_PY_SOURCE = "def handle_request(request):\n    return 'v{n}'\n"
_LAMBDA_SOURCE = "def handler(event, context):\n    return {{'statusCode': 200, 'body': 'v{n}'}}\n"
_WAT_SOURCE = (HANDLERS / "hello_wagi.wat").read_text()


@dataclass
class Swap:
    """A handler whose version the `swap` scenario rewrites; `write(n)` makes it answer `vN`."""

    kind: str
    path: Path

    def write(self, n: int) -> None:
        if self.kind == "so":
            # gcc writes the library into place, as a developer's rebuild does
            subprocess.run(
                [
                    "gcc",
                    "-O2",
                    "-fPIC",
                    "-shared",
                    f"-DVERSION={n}",
                    f"-I{install.REPO / 'include'}",
                ]
                + ["-o", str(self.path), str(HANDLERS / "version.c")],
                check=True,
            )
        elif self.kind == "py":
            self.path.write_text(_PY_SOURCE.format(n=n))
        elif self.kind == "wasm":  # the bench module answering vN: same length for any n < 10
            body = f"v{n}"
            self.path.write_text(
                _WAT_SOURCE.replace('\\n\\n 1"', f'\\n\\n{body}"').replace(
                    "(i32.const 46)", f"(i32.const {44 + len(body)})"
                )
            )
        else:
            self.path.write_text(_LAMBDA_SOURCE.format(n=n))


SWAP_FILES = {
    "py": "swap_handler.py",
    "so": "libswap.so",
    "lambda": "swap_fn.py",
    "rt": "swap_fn.py",
    "wasm": "swap.wat",
    "sam": "fn/swap_fn.py",
}


def swap_for(kind: str, workdir: Path) -> Swap:
    directory = workdir / f"swap-{kind}"
    path = directory / SWAP_FILES[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    return Swap(kind, path)


def flexilib_swap(kind: str) -> Callable[[Path], list[ServerProcess]]:
    """flexilib serving version 0 of a handler of `kind` at `/`."""

    def start(workdir: Path) -> list[ServerProcess]:
        swap = swap_for(kind, workdir)
        swap.write(0)
        rule = {
            "py": f"/ = {swap.path}",
            "so": f"/ = {swap.path}",
            "lambda": f"/ = lambda:{swap.path}:handler",
            "wasm": f"/ = wasm:{swap.path}",
            "rt": f"/ = lambda-runtime:{_write_bootstrap(swap.path.parent, swap.path.stem)}",
            "sam": f"/ = sam:{_write_sam(swap.path.parent.parent, swap.path.stem)}",
        }[kind]
        return [_flexilib(workdir, f"flexilib-reload-{kind}", [rule])]

    return start


# -- the suite ---------------------------------------------------------------

CORE = ("idle", "single", "ka", "close", "conns")
LOG_STDOUT = "on, stdout to a file"


def all_targets(sample: Path) -> list[Target]:
    """Every target in the order a round runs them: flexilib and the peers alternate."""

    def flexi(key: str, label: str, start, scenarios, **kw) -> Target:  # noqa: ANN001
        return Target(key, label, LOG_STDOUT, start, scenarios, flexilib=True, **kw)

    return [
        flexi(
            "flexilib",
            "flexilib, sample lib, 1 worker",
            flexilib_native(sample, "flexilib"),
            (*CORE, "seq"),
        ),
        Target(
            "nginx",
            "nginx, 1 worker, return 200",
            "on, file (combined)",
            start_nginx,
            CORE,
            log_file=_nginx_log,
        ),
        Target("bare", "bare uvloop+httptools (ceiling)", "off", start_bare, CORE),
        Target("uvicorn", "uvicorn raw ASGI, 1 worker", LOG_STDOUT, uvicorn(True), CORE),
        Target("granian", "granian RSGI raw app, 1 worker", LOG_STDOUT, granian(True), CORE),
        # context for the reference figures, which were taken with the logs off
        Target(
            "uvicorn-nolog",
            "uvicorn raw ASGI, 1 worker",
            "off",
            uvicorn(False),
            ("ka", "close"),
            full_only=True,
        ),
        Target(
            "granian-nolog",
            "granian RSGI raw app, 1 worker",
            "off",
            granian(False),
            ("ka", "close"),
            full_only=True,
        ),
        # right after `flexilib`: the metrics' cost is this pair's ratio (issue 13)
        flexi(
            "flexilib-noadmin",
            "flexilib, sample lib, 1 worker, --admin off",
            flexilib_native(sample, "flexilib-noadmin", admin=False),
            ("idle", "ka"),
        ),
        flexi(
            "flexilib-leak",
            "flexilib, sample lib, 1 worker, long keep-alive run",
            flexilib_native(sample, "flexilib-leak"),
            ("leak",),
            full_only=True,
            once=True,
        ),
        flexi(
            "flexilib-2w",
            "flexilib, sample lib, 2 workers",
            flexilib_native(sample, "flexilib-2w", workers=2),
            ("idle", "ka", "close"),
        ),
        flexi(
            "flexilib-python",
            "flexilib, Python handler",
            start_flexilib_python,
            ("idle", "ka"),
            optional=True,
        ),
        flexi(
            "flexilib-lambda",
            "flexilib, lambda: handler",
            start_flexilib_lambda,
            ("idle", "ka"),
            optional=True,
        ),
        flexi(
            "flexilib-slow",
            "flexilib, sample lib, slow-handler isolation",
            flexilib_native(sample, "flexilib-slow"),
            ("slow",),
        ),
        flexi(
            "flexilib-reload-py",
            "flexilib, Python handler swap",
            flexilib_swap("py"),
            ("swap",),
            optional=True,
            swap="py",
        ),
        flexi(
            "flexilib-reload-so",
            "flexilib, native library swap",
            flexilib_swap("so"),
            ("swap",),
            optional=True,
            swap="so",
        ),
        flexi(
            "flexilib-wasm",
            "flexilib, wasm: WAGI module",
            start_flexilib_wasm,
            ("idle", "single", "seq", "ka"),
            optional=True,
        ),
        flexi(
            "flexilib-reload-wasm",
            "flexilib, wasm: module swap (cold start)",
            flexilib_swap("wasm"),
            ("swap",),
            optional=True,
            swap="wasm",
        ),
        flexi(
            "flexilib-lambda-runtime",
            "flexilib, lambda-runtime: (awslambdaric)",
            start_flexilib_lambda_runtime,
            ("idle", "ka"),
            optional=True,
            full_only=True,
        ),
        flexi(
            "flexilib-reload-lambda",
            "flexilib, lambda: cold start",
            flexilib_swap("lambda"),
            ("swap",),
            optional=True,
            full_only=True,
            swap="lambda",
        ),
        flexi(
            "flexilib-reload-rt",
            "flexilib, lambda-runtime: cold start",
            flexilib_swap("rt"),
            ("swap",),
            optional=True,
            full_only=True,
            swap="rt",
        ),
        flexi(
            "flexilib-sam",
            "flexilib, sam: template (one function)",
            start_flexilib_sam,
            ("idle", "ka"),
            optional=True,
            full_only=True,
        ),
        flexi(
            "flexilib-reload-sam",
            "flexilib, sam: cold start after an edit",
            flexilib_swap("sam"),
            ("swap",),
            optional=True,
            full_only=True,
            swap="sam",
        ),
        flexi(
            "flexilib-proxy",
            "flexilib proxy -> nginx",
            start_flexilib_proxy,
            ("idle", "ka"),
            optional=True,
            full_only=True,
        ),
        Target(
            "nginx-proxy",
            "nginx proxy_pass -> nginx",
            "on, file (combined)",
            start_nginx_proxy,
            ("idle", "ka"),
            full_only=True,
            log_file=_nginx_log,
        ),
    ]
