"""Writes RESULTS.md: machine, versions, tables of medians, ratios, and the performance targets.

Every target is checked as it was set, as a ratio between servers
measured in the same run (target 5 is a memory bound in MB).
Nothing here decides the exit status: a target not met is reported, not raised.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lib import install
from lib.payload import BODY, EXTRA_HEADERS, STATUS
from lib.results import Results

PEERS = ("nginx", "bare", "uvicorn", "granian")
LEAK_FLAT_MB = 2.0  # issue 16: RSS flat within this over the leak check
DASH = "–"


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return DASH if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _x(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _run(argv: list[str], words: int = 0) -> str:
    """First line a command prints (its first `words` words if set): how tools tell versions."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not found"
    lines = (out.stdout + out.stderr).strip().splitlines()
    first = lines[0] if lines else "?"
    return " ".join(first.split()[:words]) if words else first


def machine() -> list[tuple[str, str]]:
    cpu = DASH
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    distro = DASH
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", cpu),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("OS", distro),
        ("python (bench venv)", _run([str(install.VENV_PYTHON), "--version"])),
    ]


def versions() -> list[tuple[str, str]]:
    code = (
        "import importlib.metadata as m, json\n"
        "def v(p):\n"
        "    try: return m.version(p)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{p: v(p) for p in {list(install.PEER_PACKAGES) + ['flexilib']}}}))"
    )
    out = subprocess.run([str(install.VENV_PYTHON), "-c", code], capture_output=True, text=True)
    packages = json.loads(out.stdout) if out.returncode == 0 else {}
    rows = [(name, version or "not installed") for name, version in packages.items()]
    rows += [
        ("nginx", _run([install.nginx_binary() or "nginx", "-v"]).split("/")[-1]),
        ("wrk", _run(["wrk", "-v"], 2)),
        ("curl", _run(["curl", "--version"], 2)),
        ("gcc", _run(["gcc", "--version"])),
    ]
    return rows


def _load_rows(targets, out: Results) -> list[list[str]]:  # noqa: ANN001
    rows = []
    for t in targets:
        for scenario, label in (("ka", "keep-alive"), ("close", "Connection: close")):
            if out.get(t.key, f"{scenario}.rps") is None:
                continue

            def m(name: str, spec: str = ".2f", key: str = t.key, s: str = scenario) -> str:
                return _fmt(out.get(key, f"{s}.{name}"), spec)

            rows.append(
                [
                    t.label,
                    label,
                    t.access_log,
                    m("rps", ",.0f"),
                    m("p50"),
                    m("p99"),
                    m("max", ".1f"),
                    m("cpu100k"),
                    _fmt(out.get(t.key, "idle.rss"), ".1f"),
                    m("rss", ".1f"),
                    m("errors", ".0f"),
                    _fmt(out.get(t.key, "log.bytes_per_req"), ".0f"),
                ]
            )
    return rows


def _ratio_rows(out: Results) -> list[list[str]]:
    rows = []
    for key, label in (
        ("flexilib", "flexilib, 1 worker"),
        ("flexilib-2w", "flexilib, 2 workers"),
        ("flexilib-python", "flexilib, Python handler"),
        ("flexilib-lambda", "flexilib, lambda:"),
    ):
        for scenario, name in (("ka", "keep-alive"), ("close", "Connection: close")):
            mine = out.get(key, f"{scenario}.rps")
            if mine is None:
                continue
            peers = [_x(_ratio(mine, out.get(p, f"{scenario}.rps"))) for p in PEERS]
            rows.append([label, name, *peers])
    return rows


def _targets(out: Results, slow_ms: int) -> list[list[str]]:
    g = out.get

    def verdict(*conditions: bool | None) -> str:
        if any(c is None for c in conditions):
            return "n/a (not measured)"
        return "**met**" if all(conditions) else "**not met**"

    def at_least(value: float | None, bound: float) -> bool | None:
        return None if value is None else value >= bound

    def at_most(value: float | None, bound: float) -> bool | None:
        return None if value is None else value <= bound

    ka = g("flexilib", "ka.rps")
    r_uv, r_gr, r_ng = (_ratio(ka, g(p, "ka.rps")) for p in ("uvicorn", "granian", "nginx"))
    r_close = _ratio(g("flexilib", "close.rps"), g("nginx", "close.rps"))
    r_py = _ratio(g("flexilib-python", "ka.rps"), ka)
    r_lambda = _ratio(g("flexilib-lambda", "ka.rps"), ka)
    r_slow = _ratio(g("flexilib-slow", "slow.loaded.rps"), g("flexilib-slow", "slow.base.rps"))
    slow_max = g("flexilib-slow", "slow.loaded.max")
    slow_timeouts = g("flexilib-slow", "slow.loaded.timeouts")
    swap_py, swap_so = (
        g("flexilib-reload-py", "swap.median"),
        g("flexilib-reload-so", "swap.median"),
    )
    r_single = _ratio(g("flexilib", "single.ms"), g("nginx", "single.ms"))
    idle, idle_pss = g("flexilib", "idle.rss"), g("flexilib", "idle.pss")
    added_pss = g("flexilib", "conns.added_pss")
    swing = g("flexilib-leak", "leak.rss.swing")
    no_wait = None if slow_max is None else slow_max < slow_ms / 2 and slow_timeouts == 0
    return [
        [
            "1",
            "keep-alive, native, 1 worker: ≥3x uvicorn, ≥1.5x granian",
            f"{_x(r_uv)} uvicorn, {_x(r_gr)} granian",
            verdict(at_least(r_uv, 3), at_least(r_gr, 1.5)),
        ],
        [
            "3",
            "Python handler ≥0.8x native",
            f"Python {_x(r_py)}",
            verdict(at_least(r_py, 0.8)),
        ],
        [
            "4",
            f"fast route keeps ≥80% with 8 connections in a {slow_ms} ms handler; "
            f"no fast request waits behind a slow one (max latency < {slow_ms // 2} ms, "
            "no wrk timeouts)",
            f"{_x(r_slow)} of its throughput, max {_fmt(slow_max, '.1f')} ms, "
            f"timeouts {_fmt(slow_timeouts, '.0f')}",
            verdict(at_least(r_slow, 0.8), no_wait),
        ],
        [
            "16.1a",
            "idle PSS of master + 1 worker ≤22 MB",
            f"{_fmt(idle_pss, '.1f')} MB (RSS {_fmt(idle, '.1f')} MB)",
            verdict(at_most(idle_pss, 22)),
        ],
        [
            "16.1b",
            "1,000 idle keep-alive connections add ≤5 MB (PSS)",
            f"+{_fmt(added_pss, '.1f')} MB",
            verdict(at_most(added_pss, 5)),
        ],
        [
            "16.1c",
            f"RSS flat (±{LEAK_FLAT_MB:g} MB) over a 5-minute keep-alive run (full run only)",
            f"largest distance from the start {_fmt(swing, '.1f')} MB over "
            f"{_fmt(g('flexilib-leak', 'leak.seconds'), '.0f')} s, drift "
            f"{_fmt(_drift(out, 'rss'), '+.1f')} MB",
            verdict(at_most(swing, LEAK_FLAT_MB)),
        ],
        [
            "16.2",
            "single request on an idle server ≤1.3x nginx",
            f"{_fmt(g('flexilib', 'single.ms'), '.2f')} ms vs nginx "
            f"{_fmt(g('nginx', 'single.ms'), '.2f')} ms: {_x(r_single)}",
            verdict(at_most(r_single, 1.3)),
        ],
        [
            "16.3",
            "hot swap, file written -> new version answering: median ≤30 ms, Python and native",
            f"Python {_fmt(swap_py, '.1f')} ms, native {_fmt(swap_so, '.1f')} ms",
            verdict(at_most(swap_py, 30), at_most(swap_so, 30)),
        ],
        [
            "16.4",
            "`lambda:` keep-alive ≥0.5x native",
            f"{_x(r_lambda)}",
            verdict(at_least(r_lambda, 0.5)),
        ],
        [
            "16.5",
            "keep-alive ≥0.75x nginx; `Connection: close` ≥0.85x nginx",
            f"keep-alive {_x(r_ng)}, close {_x(r_close)}",
            verdict(at_least(r_ng, 0.75), at_least(r_close, 0.85)),
        ],
    ]


Section = list[str]


def _section(title: str, *body: str | list[str]) -> Section:
    """A `## title` section: each part (a paragraph or a table's lines) followed by a blank line."""
    lines = [f"## {title}", ""]
    for part in body:
        lines += (part if isinstance(part, list) else [part]) + [""]
    return lines


def _header(mode, elapsed: float) -> Section:  # noqa: ANN001
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = BODY.decode("latin-1")
    return [
        "# flexilib benchmark results",
        "",
        f"Written by `python bench/run.py --{mode.name}` on {now}: {mode.rounds} interleaved "
        f"round(s), wrk `-t2 -c64 -d{mode.seconds:g}s --latency` on the same machine"
        + (f" after a {mode.warmup:g} s warm-up run" if mode.warmup else "")
        + f", every figure the median over rounds; the whole run took {elapsed:.0f} s. "
        "Servers and wrk share the CPUs; other load on "
        "the machine moves every figure, so compare ratios within this file only.",
        "",
        f'Every server answers wrk\'s `GET /` with status {STATUS}, body `"{body}"` and '
        + ", ".join(f"`{n}: {v}`" for n, v in EXTRA_HEADERS)
        + ' (flexilib\'s sample library counts request headers, so it answers `" 2"` '
        "to wrk's `Connection: close` requests; the peers' body stays fixed).",
        "",
    ]


def _load_section(targets, out: Results) -> Section:  # noqa: ANN001
    header = ["server", "scenario", "access log", "req/s", "p50 ms", "p99 ms", "max ms"]
    header += ["CPU s/100k", "idle RSS MB", "loaded RSS MB", "errors", "log B/req"]
    return _section(
        "Throughput and latency",
        "RSS and CPU are summed over every process of the server (nginx master and worker, "
        "flexilib's supervisor and workers). *Loaded RSS* is the peak sampled during the run; "
        "*CPU s/100k* is the server's user+system CPU per 100,000 requests; *errors* counts wrk "
        "socket errors and non-2xx answers; *log B/req* is the access log's size per request "
        "wrk sent, to show it was written.",
        _table(header, _load_rows(targets, out)),
    )


def _ratio_section(out: Results) -> Section:
    rows = _ratio_rows(out)
    if not rows:
        return []
    return _section(
        "Ratios to each peer (flexilib req/s ÷ peer req/s, same scenario, peers' logs on)",
        _table(["flexilib", "scenario", *(f"÷ {p}" for p in PEERS)], rows),
    )


def _memory_section(targets, out: Results, idle_connections: int) -> Section:  # noqa: ANN001
    g = out.get

    def mb(key: str, metric: str) -> str:
        return _fmt(g(key, metric), ".1f")

    rows = [
        [
            t.label,
            mb(t.key, "idle.rss"),
            mb(t.key, "idle.pss"),
            mb(t.key, "conns.rss"),
            mb(t.key, "conns.pss"),
            mb(t.key, "conns.added_pss"),
            _fmt(g(t.key, "conns.held"), ".0f"),
            mb(t.key, "ka.rss"),
            mb(t.key, "ka.pss"),
        ]
        for t in targets
        if g(t.key, "idle.rss") is not None
    ]
    if not rows:
        return []
    return _section(
        f"Memory: idle, with {idle_connections:,} idle keep-alive connections, under load",
        "Summed over the server's processes. *RSS* counts a page once in every process "
        "mapping it, so the pages a forked worker shares with its master count twice; *PSS* "
        "(`Pss:` of /proc/PID/smaps_rollup) divides each shared page among its processes, so "
        "the sum counts it once. Each idle connection was opened, answered one request and then "
        "held open; *added* is PSS with them held minus PSS just before they were opened; "
        "*held* counts those still open when memory was read. *keep-alive peak* is the maximum "
        "sampled every 0.25 s during the keep-alive run.",
        _table(
            [
                "server",
                "idle RSS MB",
                "idle PSS MB",
                f"{idle_connections:,} conns RSS MB",
                "PSS MB",
                "added PSS MB",
                "held",
                "keep-alive peak RSS MB",
                "PSS MB",
            ],
            rows,
        ),
    )


def _leak_section(by_key, out: Results) -> Section:  # noqa: ANN001
    key = "flexilib-leak"
    if key not in by_key or out.get(key, "leak.rss.start") is None:
        return []

    def g(metric: str, spec: str = ".1f") -> str:
        return _fmt(out.get(key, f"leak.{metric}"), spec)

    rows = [
        [
            name.upper(),
            g(f"{name}.start"),
            g(f"{name}.end"),
            g(f"{name}.max"),
            _fmt(_drift(out, name), "+.1f"),
            g(f"{name}.swing"),
            " ".join(g(f"{name}.at{tenth}") for tenth in range(11)),
        ]
        for name in ("rss", "pss")
    ]
    swing = out.get(key, "leak.rss.swing")
    flat = "flat" if swing <= LEAK_FLAT_MB else "**not flat**"
    return _section(
        f"Leak check: {by_key[key].label}, {g('seconds', '.0f')} s of keep-alive wrk",
        f"wrk `-t2 -c64` ({g('rps', ',.0f')} req/s, {g('errors', '.0f')} errors) after a warm-up "
        "run; the tree's memory sampled every second. *swing* is the largest distance of any "
        "sample from the start.",
        _table(
            ["", "start MB", "end MB", "max MB", "drift MB", "swing MB", "every tenth of the run"],
            rows,
        ),
        f"RSS {flat} (±{LEAK_FLAT_MB:g} MB: every sample within that of the start).",
    )


def _drift(out: Results, name: str) -> float | None:
    """The leak check's end minus its start, for `rss` or `pss`."""
    start = out.get("flexilib-leak", f"leak.{name}.start")
    end = out.get("flexilib-leak", f"leak.{name}.end")
    return None if start is None or end is None else end - start


def _single_section(targets, out: Results, count: int) -> Section:  # noqa: ANN001
    g = out.get
    rows = [
        [
            t.label,
            _fmt(g(t.key, "single.ms"), ".3f"),
            _x(_ratio(g(t.key, "single.ms"), g("nginx", "single.ms"))),
        ]
        for t in targets
        if "single" in t.scenarios
    ]
    if not rows:
        return []
    return _section(
        f"Single request on an idle server (median of {count} sequential curl calls, "
        "curl's `time_total`)",
        _table(["server", "ms", "÷ nginx"], rows),
    )


def _slow_section(by_key, out: Results, slow_ms: int) -> Section:  # noqa: ANN001
    if "flexilib-slow" not in by_key:
        return []

    def g(metric: str, spec: str) -> str:
        return _fmt(out.get("flexilib-slow", metric), spec)

    rows = [
        [
            label,
            g(f"{p}.rps", ",.0f"),
            g(f"{p}.p50", ".2f"),
            g(f"{p}.p99", ".2f"),
            g(f"{p}.max", ".1f"),
            g(f"{p}.timeouts", ".0f"),
        ]
        for p, label in (("slow.base", "alone"), ("slow.loaded", "with the slow load"))
    ]
    ratio = _ratio(
        out.get("flexilib-slow", "slow.loaded.rps"), out.get("flexilib-slow", "slow.base.rps")
    )
    return _section(
        f"Slow-handler isolation: 8 connections looping `x-slow: {slow_ms}` while wrk measures the fast route",
        _table(["fast route", "req/s", "p50 ms", "p99 ms", "max ms", "wrk timeouts"], rows),
        f"Ratio with/without: {_x(ratio)}; slow requests answered during the loaded run: "
        f"{g('slow.completed', '.0f')}.",
    )


def _swap_section(by_key, out: Results, swaps: int) -> Section:  # noqa: ANN001
    keys = (
        "flexilib-reload-py",
        "flexilib-reload-so",
        "flexilib-reload-lambda",
        "flexilib-reload-rt",
        "flexilib-reload-wasm",
        "flexilib-reload-sam",
    )
    rows = [
        [
            by_key[k].label,
            _fmt(out.get(k, "swap.median"), ".1f"),
            _fmt(out.get(k, "swap.max"), ".1f"),
        ]
        for k in keys
        if k in by_key
    ]
    if not rows:
        return []
    return _section(
        f"Hot reload: file written -> new version answering ({swaps} swaps per round)",
        "Python files are rewritten in place; the native library is rebuilt by gcc into place; "
        "the clock starts when the write (or gcc) returns and stops at the first answer with the "
        "new body, polled by back-to-back requests.",
        _table(["handler", "median ms", "worst ms"], rows),
    )


def _lambda_section(by_key, out: Results) -> Section:  # noqa: ANN001
    if not {"flexilib-lambda", "flexilib-lambda-runtime", "flexilib-sam"} & set(by_key):
        return []
    g, floor = out.get, out.floor or {}
    rows = [
        [
            "direct Python call (the floor, in run.py's interpreter)",
            _fmt(floor.get("rps")),
            _fmt(floor.get("p50"), ".4f"),
            _fmt(floor.get("p99"), ".4f"),
            DASH,
        ]
    ]
    for key, swap_key, label in (
        ("flexilib-lambda", "flexilib-reload-lambda", "`lambda:` in-process"),
        ("flexilib-lambda-runtime", "flexilib-reload-rt", "`lambda-runtime:` with awslambdaric"),
        ("flexilib-sam", "flexilib-reload-sam", "`sam:` template, the function in process"),
    ):
        rows.append(
            [
                label,
                _fmt(g(key, "ka.rps")),
                _fmt(g(key, "ka.p50"), ".2f"),
                _fmt(g(key, "ka.p99"), ".2f"),
                _fmt(g(swap_key, "swap.median"), ".1f"),
            ]
        )
    return _section(
        "AWS Lambda: the same handler three ways",
        _table(
            ["path", "req/s", "p50 ms", "p99 ms", "cold start after a file change, median ms"], rows
        ),
    )


def _wasm_section(by_key, out: Results) -> Section:  # noqa: ANN001
    if "flexilib-wasm" not in by_key:
        return []
    g = out.get
    rows = [
        [
            label,
            _fmt(g(k, "ka.rps")),
            _fmt(g(k, "ka.p50"), ".2f"),
            _fmt(g(k, "ka.p99"), ".2f"),
            _fmt(g(k, "seq.p50"), ".3f"),
            _fmt(g(k, "seq.p99"), ".3f"),
            _fmt(g(k, "single.ms"), ".3f"),
        ]
        for k, label in (("flexilib", "native sample library"), ("flexilib-wasm", "`wasm:` module"))
    ]
    share = _ratio(g("flexilib-wasm", "ka.rps"), g("flexilib", "ka.rps"))
    single = g("flexilib-wasm", "seq.p50")
    return _section(
        "WebAssembly (issue 15): a WAGI module, a fresh wasmtime instance per request",
        "bench/handlers/hello_wagi.wat answers the suite's response; 1 worker. wrk: keep-alive, "
        "64 connections. Idle: one keep-alive client sending back to back (p50/p99), and curl's "
        "`time_total` with a new connection per request (median).",
        _table(
            [
                "handler",
                "wrk req/s",
                "wrk p50 ms",
                "wrk p99 ms",
                "idle p50 ms",
                "idle p99 ms",
                "curl ms",
            ],
            rows,
        ),
        f"`wasm:` ÷ native: {_x(share)} req/s (target ≥ 0.05: "
        f"{'met' if share is not None and share >= 0.05 else 'not met'}); idle p50 "
        f"{_fmt(single, '.3f')} ms (target < 1 ms: "
        f"{'met' if single is not None and single < 1 else 'not met'}); cold start after a file "
        f"change: {_fmt(g('flexilib-reload-wasm', 'swap.median'), '.1f')} ms median.",
    )


def _proxy_section(by_key, out: Results) -> Section:  # noqa: ANN001
    if "flexilib-proxy" not in by_key and "nginx-proxy" not in by_key:
        return []
    g = out.get
    rows = [
        [label, _fmt(g(k, "ka.rps")), _fmt(g(k, "ka.p50"), ".2f"), _fmt(g(k, "ka.p99"), ".2f")]
        for k, label in (("flexilib-proxy", "flexilib"), ("nginx-proxy", "nginx"))
    ]
    return _section(
        "Reverse proxy: flexilib vs nginx `proxy_pass`, same upstream",
        "The upstream is an nginx `return 200` server (1 worker) of its own; keep-alive clients; "
        "the proxy's RSS and CPU are in the first table.",
        _table(["proxy", "req/s", "p50 ms", "p99 ms"], rows),
        f"flexilib ÷ nginx: {_x(_ratio(g('flexilib-proxy', 'ka.rps'), g('nginx-proxy', 'ka.rps')))} "
        f"req/s, p99 {_x(_ratio(g('flexilib-proxy', 'ka.p99'), g('nginx-proxy', 'ka.p99')))}.",
    )


def _admin_section(by_key, out: Results) -> Section:  # noqa: ANN001
    if "flexilib" not in by_key or "flexilib-noadmin" not in by_key:
        return []
    g = out.get
    rows = [
        [
            label,
            _fmt(g(k, "ka.rps")),
            _fmt(g(k, "ka.p99"), ".2f"),
            _fmt(g(k, "ka.cpu100k"), ".2f"),
            _fmt(g(k, "idle.rss"), ".1f"),
        ]
        for k, label in (("flexilib", "metrics on (default)"), ("flexilib-noadmin", "--admin off"))
    ]
    ratio = _ratio(g("flexilib", "ka.rps"), g("flexilib-noadmin", "ka.rps"))
    on, off = g("flexilib", "idle.rss"), g("flexilib-noadmin", "idle.rss")
    grown = None if on is None or off is None else on - off
    return _section(
        "Observability cost (issue 13): metrics on vs `--admin off`, same run",
        "Both serve the sample library with 1 worker; with metrics on, every request is "
        "counted per route and the worker reports to the master once a second.",
        _table(["flexilib", "keep-alive req/s", "p99 ms", "CPU s/100k", "idle RSS MB"], rows),
        f"Throughput on ÷ off: {_x(ratio)} (target >= 0.95x); CPU per request on ÷ off: "
        f"{_x(_ratio(g('flexilib', 'ka.cpu100k'), g('flexilib-noadmin', 'ka.cpu100k')))} (less "
        f"moved by other load on the machine); idle RSS grows by {_fmt(grown, '.1f')} MB "
        "(target <= 3 MB).",
    )


_HOW = [
    "- nginx: `daemon off`, master + `worker_processes 1`, `return 200` with the body, access "
    "log in the default `combined` format to a file (bench/peers/nginx.py).",
    "- bare: bench/peers/bare.py, uvloop + httptools writing one pre-built response, no access "
    "log (the ceiling, not a competitor).",
    "- uvicorn: `--workers 1 --loop uvloop --http httptools --lifespan off --access-log`, raw ASGI "
    "app (bench/peers/asgi_app.py), its access log on stdout to a file.",
    "- granian: `--interface rsgi --workers 1 --loop uvloop --http 1 --access-log`, raw RSGI app "
    "(bench/peers/rsgi_app.py), its access log on stdout to a file. Rows with the log *off* "
    "(full mode) are context only; no ratio uses them.",
    "- flexilib: `flexilib serve --config <generated proxy.ini> --port P --address 127.0.0.1`, "
    "default settings (`SERVER_WORKERS=2` for the 2-worker rows), its access log on stdout to a "
    "file; handlers from bench/handlers/ and lib/libsample.so.",
]


def write(
    path: Path,
    mode,  # noqa: ANN001 - run.Mode
    targets,  # noqa: ANN001 - list[servers.Target]
    out: Results,
    elapsed: float,
    slow_ms: int,
    idle_connections: int,
) -> None:
    """Renders the whole results file; sections of targets that were not run are left out."""
    by_key = {t.key: t for t in targets}
    lines = _header(mode, elapsed)
    lines += _section("Machine", _table(["", ""], machine()))
    lines += _section("Versions", _table(["software", "version"], versions()))
    lines += _load_section(targets, out)
    lines += _ratio_section(out)
    lines += _memory_section(targets, out, idle_connections)
    lines += _leak_section(by_key, out)
    lines += _single_section(targets, out, mode.single_requests)
    lines += _slow_section(by_key, out, slow_ms)
    lines += _swap_section(by_key, out, mode.swaps)
    lines += _lambda_section(by_key, out)
    lines += _wasm_section(by_key, out)
    lines += _proxy_section(by_key, out)
    lines += _admin_section(by_key, out)
    lines += _section(
        "Performance targets (ratios within this run)",
        _table(["#", "target", "measured", "verdict"], _targets(out, slow_ms)),
    )
    if mode.name != "full":
        lines += [
            f"*{mode.name} mode*: short runs, one round, without the Lambda and proxy extras; the "
            "committed figures come from `--full`.",
            "",
        ]
    if out.status:
        lines += _section("Skipped or failed", [f"- `{k}`: {why}" for k, why in out.status.items()])
    lines += _section("How the servers were run", _HOW)
    path.write_text("\n".join(lines))
