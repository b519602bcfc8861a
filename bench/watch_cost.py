#!/usr/bin/env python3
"""What flexilib's file watching costs another process writing into a handler folder (issue 16).

    bench/.venv/bin/python bench/watch_cost.py [--rounds 3] [--seconds 5] [--old-src PATH]

nginx (1 worker, unbuffered `combined` access log, bench/peers/nginx.py's
config) writes its access log into a folder while wrk (-t2 -c64) loads it.
Each round measures, one after the other: flexilib serving a Python handler
from *another* folder (nothing watches the log's folder: the baseline), and
flexilib serving a handler from the log's folder (its watcher on that
folder). `--old-src` adds flexilib run from another checkout's `src`
(PYTHONPATH), e.g. the code before this watcher, in the same rounds. Prints
nginx's req/s and CPU time per request, and the CPU time flexilib spent meanwhile,
per round, and their medians as ratios to the baseline's; no figure is asserted. The bench venv's interpreter has every dependency an older
checkout may import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers.nginx import write_return_config  # noqa: E402

from lib import install, wrk  # noqa: E402
from lib.procs import ServerProcess, free_port, get, tree_cpu_seconds  # noqa: E402

HANDLER = "def handle_request(request):\n    return 'ok'\n"


def start_flexilib(workdir: Path, name: str, handler: Path, src: str | None) -> ServerProcess:
    """flexilib serving `handler` at `/`, loaded (so its folder is watched) before returning."""
    confdir = workdir / name
    confdir.mkdir()
    (confdir / "proxy.ini").write_text(f"/ = {handler}\n")
    port = free_port()
    argv = [sys.executable, "-m", "flexilib", "serve", "--config", str(confdir / "proxy.ini")]
    argv += ["--port", str(port), "--address", "127.0.0.1", "--admin", "off"]
    env = {"SERVER_WORKERS": "1"}
    if src is not None:
        env["PYTHONPATH"] = src
    server = ServerProcess(name, argv, port, workdir, env=env, cwd=confdir)
    answer = server.wait_ready()
    if answer.status != 200:
        raise SystemExit(f"{name}: {answer.status} {answer.body!r}\n{server.stderr_tail()}")
    return server


def measure(
    workdir: Path, name: str, handler: Path, src: str | None, seconds: float
) -> tuple[float, float, float]:
    """nginx's req/s and CPU µs per request, and flexilib's CPU seconds, during one wrk run,
    nginx's access log in `workdir/site` and flexilib serving `handler`."""
    flexilib = start_flexilib(workdir, f"{name}-flexilib", handler, src)
    prefix = workdir / f"{name}-nginx"
    port = free_port()
    log = workdir / "site" / "access.log"
    log.unlink(missing_ok=True)
    conf = write_return_config(prefix, port, log)
    nginx = ServerProcess(
        f"{name}-nginx",
        [install.nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "e.log")],
        port,
        workdir,
    )
    try:
        nginx.wait_ready()
        wrk.run(port, 1)  # warm-up
        cpu = tree_cpu_seconds(nginx.pid), tree_cpu_seconds(flexilib.pid)
        result = wrk.run(port, seconds)
        nginx_cpu = tree_cpu_seconds(nginx.pid) - cpu[0]
        flexilib_cpu = tree_cpu_seconds(flexilib.pid) - cpu[1]
        get(flexilib.port)  # still serving
    finally:
        nginx.stop()
        flexilib.stop()
    return result.rps, nginx_cpu / result.requests * 1e6, flexilib_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--old-src", help="another checkout's src/ to run as a third case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flexilib-watch-cost-") as tmp:
        workdir = Path(tmp)
        for folder in ("site", "elsewhere"):
            (workdir / folder).mkdir()
            (workdir / folder / "hello.py").write_text(HANDLER)
        cases = {
            "not watched (handler elsewhere)": (workdir / "elsewhere" / "hello.py", None),
            "watched by this flexilib": (workdir / "site" / "hello.py", None),
        }
        if args.old_src:
            old = os.path.abspath(args.old_src)
            cases[f"watched by flexilib from {old}"] = (workdir / "site" / "hello.py", old)
        runs: dict[str, list[tuple[float, float, float]]] = {case: [] for case in cases}
        for round_ in range(1, args.rounds + 1):
            for n, (case, (handler, src)) in enumerate(cases.items()):
                run = measure(workdir, f"r{round_}c{n}", handler, src, args.seconds)
                runs[case].append(run)
                print(
                    f"[round {round_}] {case}: {run[0]:,.0f} req/s, nginx {run[1]:.1f} µs CPU"
                    f" per request, flexilib {run[2]:.2f} s CPU",
                    flush=True,
                )
        medians = {
            case: [statistics.median(v) for v in zip(*r, strict=True)] for case, r in runs.items()
        }
        base = next(iter(medians.values()))
        print(f"\nnginx with its access log in the folder (medians of {args.rounds} rounds):")
        for case, (rps, us, cpu) in medians.items():
            print(
                f"  {case}: {rps:,.0f} req/s ({rps / base[0]:.2f}x), {us:.1f} µs CPU per"
                f" request ({us / base[1]:.2f}x); flexilib {cpu:.2f} s CPU"
            )


if __name__ == "__main__":
    main()
