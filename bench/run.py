#!/usr/bin/env python3
"""flexilib's benchmark suite: flexilib side by side with nginx, uvicorn, granian and a bare loop.

    python bench/run.py [--quick | --smoke | --full] [--only KEY,KEY] [--output FILE]

Installs what it needs (lib/install.py), then runs interleaved rounds (round 1:
every server, round 2: every server, ...), each server started fresh on a
free loopback port and stopped after its scenarios, and writes the medians
over rounds to bench/RESULTS.md (lib/report.py). The exit status is 0 when
every required server started and answered, 1 otherwise; timings never
decide it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import install, report, wrk  # noqa: E402
from lib.clients import (  # noqa: E402
    SlowLoad,
    hold_idle_connections,
    sequential_ms,
    single_request_ms,
    wait_for_body,
)
from lib.payload import BODY, STATUS  # noqa: E402
from lib.procs import (  # noqa: E402
    MemorySampler,
    ServerProcess,
    StartError,
    get,
    settled_memory,
    tree_cpu_seconds,
    tree_memory,
)
from lib.results import Results  # noqa: E402
from lib.servers import HANDLERS, Target, all_targets, swap_for  # noqa: E402

IDLE_CONNECTIONS = 1000
SLOW_CONNECTIONS = 8
SLOW_MS = 1000
SWAP_TIMEOUT = 10.0
LEAK_SECONDS = 300.0  # the full run's leak check (issue 16): --leak-seconds shortens it


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: float  # one wrk run
    warmup: float  # an unmeasured wrk run before each measured one
    rounds: int
    single_requests: int  # sequential curl calls for the idle-server latency
    swaps: int  # hot-reload swaps per round
    full: bool  # include the issue 4 and 5 extras
    leak_seconds: float = LEAK_SECONDS  # the `leak` scenario's wrk run


MODES = {
    "quick": Mode("quick", seconds=3, warmup=0, rounds=1, single_requests=50, swaps=5, full=False),
    "smoke": Mode("smoke", seconds=2, warmup=0, rounds=1, single_requests=20, swaps=3, full=False),
    "full": Mode("full", seconds=10, warmup=2, rounds=3, single_requests=200, swaps=20, full=True),
}


class ScenarioError(Exception):
    """A scenario could not produce its numbers (the server lacks a feature, or broke)."""


def _say(message: str) -> None:
    print(message, flush=True)


# -- scenarios -----------------------------------------------------------------


def load(proc: ServerProcess, mode: Mode, headers: tuple[str, ...] = ()) -> dict[str, float]:
    """One wrk run with the server's CPU time and peak RSS and PSS taken around it."""
    if mode.warmup:
        wrk.run(proc.port, mode.warmup, headers)
    cpu_before = tree_cpu_seconds(proc.pid)
    with MemorySampler(proc.pid) as memory:
        result = wrk.run(proc.port, mode.seconds, headers)
    cpu = tree_cpu_seconds(proc.pid) - cpu_before
    return {
        "rps": result.rps,
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "max": result.max_ms,
        "cpu100k": cpu / max(result.requests, 1) * 1e5,
        "rss": memory.peak_rss_kb / 1024,
        "pss": memory.peak_pss_kb / 1024,
        "errors": result.errors + result.non_2xx,
        "timeouts": result.timeouts,
        "requests": result.requests,
    }


def leak_check(proc: ServerProcess, seconds: float) -> dict[str, float]:
    """A long keep-alive wrk run with the tree's RSS and PSS sampled every second.

    A warm-up run first (a tenth of the time, at most 10 s) lets the thread
    pool and buffers reach their working size; `start` is the first sample of
    the measured run, `swing` the largest distance of any sample from it.
    """
    wrk.run(proc.port, max(1.0, min(10.0, seconds / 10)))
    with MemorySampler(proc.pid, interval=1.0) as memory:
        result = wrk.run(proc.port, seconds)
    samples = memory.samples
    figures = {"seconds": seconds, "rps": result.rps, "errors": result.errors + result.non_2xx}
    figures["requests"] = result.requests
    for name in ("rss", "pss"):
        values = [getattr(s, f"{name}_kb") / 1024 for s in samples]
        start = values[0]
        figures[f"{name}.start"] = start
        figures[f"{name}.end"] = values[-1]
        figures[f"{name}.max"] = max(values)
        figures[f"{name}.swing"] = max(abs(v - start) for v in values)
        for tenth in range(11):  # the curve, for the report: every tenth of the run
            figures[f"{name}.at{tenth}"] = values[round(tenth * (len(values) - 1) / 10)]
    return figures


def swap_latencies(target: Target, proc: ServerProcess, workdir: Path, count: int) -> list[float]:
    """Rewrites the handler `count` times; ms from each write to the new version answering."""
    swap = swap_for(target.swap, workdir)
    latencies = []
    for version in range(1, count + 1):
        swap.write(version)
        written = time.monotonic()
        answered = wait_for_body(proc.port, "/", f"v{version}".encode(), SWAP_TIMEOUT)
        if answered is None:
            raise ScenarioError(
                f"version {version} not answering {SWAP_TIMEOUT:.0f} s after the write"
            )
        latencies.append((answered - written) * 1e3)
    return latencies


def run_scenario(
    name: str, target: Target, proc: ServerProcess, mode: Mode, workdir: Path, out: Results
) -> int:
    """Measures one scenario into `out`; returns the number of wrk requests it sent."""
    key = target.key
    if name == "idle":
        idle = settled_memory(proc.pid)
        out.add(key, "idle.rss", idle.rss_kb / 1024)
        out.add(key, "idle.pss", idle.pss_kb / 1024)
        _say(f"    idle  rss {idle.rss_kb / 1024:.1f} MB  pss {idle.pss_kb / 1024:.1f} MB")
    elif name == "single":
        out.add(key, "single.ms", single_request_ms(proc.port, mode.single_requests))
    elif name == "seq":
        p50, p99 = sequential_ms(proc.port, mode.single_requests * 20)
        out.add(key, "seq.p50", p50)
        out.add(key, "seq.p99", p99)
        _say(f"    seq   p50 {p50:.3f} ms  p99 {p99:.3f} ms (one keep-alive client, back to back)")
    elif name in ("ka", "close"):
        headers = ("Connection: close",) if name == "close" else ()
        result = load(proc, mode, headers)
        out.add_all(key, name, result)
        _say(
            f"    {name:5} {result['rps']:>9,.0f} req/s  p50 {result['p50']:.2f} ms  "
            f"p99 {result['p99']:.2f} ms  cpu {result['cpu100k']:.2f} s/100k  "
            f"rss {result['rss']:.1f} MB  pss {result['pss']:.1f} MB  errors {result['errors']:.0f}"
        )
        return int(result["requests"])
    elif name == "conns":
        before = tree_memory(proc.pid)  # after the scenarios before it, not the idle figure
        held, during = hold_idle_connections(
            proc.port, IDLE_CONNECTIONS, lambda: tree_memory(proc.pid)
        )
        out.add(key, "conns.rss", during.rss_kb / 1024)
        out.add(key, "conns.pss", during.pss_kb / 1024)
        out.add(key, "conns.added_rss", (during.rss_kb - before.rss_kb) / 1024)
        out.add(key, "conns.added_pss", (during.pss_kb - before.pss_kb) / 1024)
        out.add(key, "conns.held", held)
        _say(
            f"    conns {held} idle keep-alive connections held: rss {during.rss_kb / 1024:.1f} MB"
            f" (+{(during.rss_kb - before.rss_kb) / 1024:.1f}), pss {during.pss_kb / 1024:.1f} MB"
            f" (+{(during.pss_kb - before.pss_kb) / 1024:.1f})"
        )
    elif name == "leak":
        figures = leak_check(proc, mode.leak_seconds)
        out.add_all(key, "leak", figures)
        verdict = "flat" if figures["rss.swing"] <= report.LEAK_FLAT_MB else "NOT flat"
        _say(
            f"    leak  {mode.leak_seconds:g} s keep-alive, {figures['rps']:,.0f} req/s: rss "
            f"{figures['rss.start']:.1f} -> {figures['rss.end']:.1f} MB (max "
            f"{figures['rss.max']:.1f}), pss {figures['pss.start']:.1f} -> "
            f"{figures['pss.end']:.1f} MB (max {figures['pss.max']:.1f}): {verdict} "
            f"(±{report.LEAK_FLAT_MB:g} MB)"
        )
        return int(figures["requests"])
    elif name == "slow":
        base = load(proc, mode)
        with SlowLoad(proc.port, SLOW_CONNECTIONS, SLOW_MS) as slow:
            loaded = load(proc, mode)
        out.add_all(key, "slow.base", base)
        out.add_all(key, "slow.loaded", loaded)
        out.add(key, "slow.completed", slow.completed)
        if slow.completed == 0:
            raise ScenarioError(f"no slow request completed ({slow.failed} failed)")
        _say(
            f"    slow  {base['rps']:,.0f} -> {loaded['rps']:,.0f} req/s with {SLOW_CONNECTIONS} "
            f"slow connections ({slow.completed} slow answered), max {loaded['max']:.1f} ms"
        )
        return int(base["requests"] + loaded["requests"])
    elif name == "swap":
        latencies = swap_latencies(target, proc, workdir, mode.swaps)
        out.add(key, "swap.median", statistics.median(latencies))
        out.add(key, "swap.max", max(latencies))
        _say(f"    swap  median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms")
    else:
        raise ValueError(f"unknown scenario {name}")
    return 0


# -- one target, one round -------------------------------------------------------


def _problem_with_answer(target: Target, proc: ServerProcess) -> str | None:
    """Checks the server's answer to a wrk-like `GET /`; returns what is wrong, if anything."""
    answer = get(proc.port)
    expected = b"v0" if target.swap else BODY
    if answer.status != STATUS:
        return f"answers {answer.status} to GET / ({answer.body[:120]!r})"
    if answer.body != expected:
        if not target.flexilib or target.swap:
            return f"answers {answer.body[:120]!r}, expected {expected!r}"
        _say(
            f"  WARNING: {target.key} answers {answer.body[:120]!r} where the peers serve "
            f"{expected!r}: see bench/lib/payload.py"
        )
    return None


def run_target(target: Target, mode: Mode, workdir: Path, out: Results) -> None:
    """Starts the target, runs its scenarios, stops it; records a skip or failure in `out`."""
    procs: list[ServerProcess] = []
    requests = 0
    try:
        procs = target.start(workdir)
        for proc in procs:
            proc.wait_ready()
        main = procs[-1]
        problem = _problem_with_answer(target, main)
        if problem:
            raise ScenarioError(problem)
        for scenario in target.scenarios:
            requests += run_scenario(scenario, target, main, mode, workdir, out)
    except (StartError, ScenarioError, OSError, ValueError) as exc:
        tail = procs[-1].stderr_tail() if procs else ""
        verdict = "skipped" if target.optional else "failed"
        out.status[target.key] = f"{verdict}: {exc}"
        _say(f"  {verdict.upper()} {target.key}: {exc}")
        if tail:
            _say("    stderr: " + tail.replace("\n", "\n            "))
    finally:
        for proc in reversed(procs):
            proc.stop()
    if procs and requests:
        log = target.log_file(procs[-1], workdir)
        if log.exists():
            out.add(target.key, "log.bytes_per_req", log.stat().st_size / requests)
            log.unlink()  # access logs of a full run reach hundreds of MB


def lambda_floor(calls: int = 100_000) -> dict[str, float]:
    """The benchmark's Lambda handler called directly in this interpreter: the floor."""
    spec = importlib.util.spec_from_file_location("lambda_hello", HANDLERS / "lambda_hello.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = {"version": "2.0", "routeKey": "$default", "rawPath": "/", "headers": {"host": "x"}}
    times = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        module.handler(event, None)
        times.append(time.perf_counter_ns() - started)
    times.sort()
    return {
        "rps": calls / (sum(times) / 1e9),
        "p50": times[len(times) // 2] / 1e6,
        "p99": times[int(len(times) * 0.99)] / 1e6,
    }


# -- main ------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="flexilib benchmark suite (see bench/README.md)")
    group = parser.add_mutually_exclusive_group()
    for name, mode in MODES.items():
        group.add_argument(
            f"--{name}",
            dest="mode",
            action="store_const",
            const=name,
            help=f"{mode.rounds} round(s) of {mode.seconds:g} s runs",
        )
    parser.add_argument("--only", help="comma-separated target keys to run (see lib/servers.py)")
    parser.add_argument("--output", type=Path, help="results file (default bench/RESULTS.md)")
    parser.add_argument(
        "--require-flexilib", action="store_true", help="fail, not skip, when flexilib is missing"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--leak-seconds",
        type=float,
        default=LEAK_SECONDS,
        help=f"length of the leak check's keep-alive run (default {LEAK_SECONDS:g})",
    )
    parser.set_defaults(mode="quick")
    return parser.parse_args(argv)


def _raise_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    mode = dataclasses.replace(MODES[args.mode], leak_seconds=args.leak_seconds)
    signal.signal(signal.SIGTERM, _raise_on_term)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,000 idle connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    began = time.monotonic()

    sample = install.ensure_all()
    targets = [t for t in all_targets(sample) if mode.full or not t.full_only]
    if args.only:
        keys = set(args.only.split(","))
        unknown = keys - {t.key for t in all_targets(sample)}
        if unknown:
            _say(f"unknown target(s): {', '.join(sorted(unknown))}")
            return 2
        targets = [t for t in all_targets(sample) if t.key in keys]

    out = Results()
    missing = install.flexilib_missing()
    if missing:
        verdict = "failed" if args.require_flexilib else "skipped"
        _say(f"{verdict.upper()} every flexilib server: flexilib is not runnable yet ({missing})")
        for target in targets:
            if target.flexilib:
                out.status[target.key] = f"{verdict}: flexilib not runnable ({missing})"

    workdir = Path(tempfile.mkdtemp(prefix="flexilib-bench-"))
    try:
        for round_no in range(1, mode.rounds + 1):
            round_dir = workdir / f"round{round_no}"  # nothing carries over between rounds
            round_dir.mkdir()
            for target in targets:
                if target.key in out.status or (target.once and round_no > 1):
                    continue
                _say(f"[round {round_no}/{mode.rounds}] {target.key}: {target.label}")
                run_target(target, mode, round_dir, out)
        if any(t.key == "flexilib-lambda" for t in targets):
            out.floor = lambda_floor()
    finally:
        if args.keep:
            _say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    output = args.output or install.BENCH / "RESULTS.md"
    elapsed = time.monotonic() - began
    report.write(output, mode, targets, out, elapsed, SLOW_MS, IDLE_CONNECTIONS)
    _say(f"wrote {output} ({mode.name} mode, {elapsed:.0f} s)")
    failed = {k: v for k, v in out.status.items() if v.startswith("failed")}
    for key, why in failed.items():
        _say(f"FAILED {key}: {why.removeprefix('failed: ')}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every server this run started has been stopped", flush=True)
        sys.exit(130)
