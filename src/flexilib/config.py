"""proxy.ini -> an ordered list of Rules.

Pure parsing: nothing here imports the rest of flexilib, loads a handler or
touches anything but the config file itself. Each kind checks its own
options (`flexilib.runtime.handler.validate_rules`), and the master does
both once per config and hands the result to its workers. The format is the original
FlexiLib's (see README "Configuration"), so its own proxy.ini parses as is.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ConfigError", "HandlerSpec", "Rule", "load_config", "parse_config", "parse_target"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_KNOWN_SCHEMES = ("http", "https", "lambda", "lambda-runtime", "worker", "python", "wasm", "sam")
_REPEATABLE = frozenset({"dir"})  # options a kind reads as a list (wasm: one mount each)


class ConfigError(Exception):
    """A problem in the config file, located by file and line."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class HandlerSpec:
    """What a proxy.ini line says about one handler: its identity for sharing and reuse."""

    kind: str
    target: str  # the TARGET text as written
    path: str  # resolved file path or URL list, kind-specific
    options: tuple[tuple[str, str], ...] = ()
    base_dir: Path = field(default_factory=Path.cwd, compare=False)
    func: str = ""  # function name for python:/lambda: kinds

    def option(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.options:
            if key == name:
                return value
        return default

    def prefixed(self, prefix: str) -> dict[str, str]:
        """Options named `prefix` + NAME, as {NAME: value} (e.g. `env.`)."""
        return {k[len(prefix) :]: v for k, v in self.options if k.startswith(prefix)}

    @property
    def marker(self) -> int:
        """A stable non-zero 31-bit number for this handler, the same in every process.

        Workers mark the native library they are calling with it in memory the
        master shares (`server/scoreboard.py`), so the master can tell which one
        a crashed worker was in.
        """
        identity = "\0".join((self.kind, self.target, *(f"{k}={v}" for k, v in self.options)))
        return zlib.crc32(identity.encode()) & 0x7FFFFFFF or 1


@dataclass(frozen=True)
class Rule:
    """One routing line: a path prefix, optionally guarded by a header prefix."""

    key: str  # the KEY as written (trimmed)
    path_prefix: bytes
    header_name: bytes | None  # lower-case; None for a path rule
    value_prefix: bytes
    spec: HandlerSpec
    line: int

    def describe(self) -> str:
        if self.header_name is None:
            return self.path_prefix.decode("latin-1")
        name = self.header_name.decode("latin-1")
        return f"{name}: {self.value_prefix.decode('latin-1')} {self.path_prefix.decode('latin-1')}"


def load_config(path: Path | str) -> list[Rule]:
    """Read and parse a config file; raises ConfigError (with line 0 when unreadable)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, 0, "config is not UTF-8 text") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | str) -> list[Rule]:
    """Parse config text; relative handler paths resolve against the file's folder."""
    path = Path(path)
    # the folder the path names, symlinks not followed: a Kubernetes ConfigMap's
    # proxy.ini resolves into a timestamped folder that the next update deletes
    base_dir = path.absolute().parent
    rules: list[Rule] = []
    seen: dict[tuple[bytes | None, bytes, bytes], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, rest = line.partition("=")
        key, rest = key.strip(), rest.strip()
        if not sep:
            raise ConfigError(path, number, f"expected 'KEY = TARGET', found {raw.strip()!r}")
        if not key:
            raise ConfigError(path, number, "empty KEY before '='")
        if not rest:
            raise ConfigError(path, number, f"no TARGET for {key!r}")
        try:
            header, value_prefix, path_prefix = _parse_key(key)
            spec = parse_target(rest, base_dir)
        except ValueError as exc:
            raise ConfigError(path, number, str(exc)) from None
        identity = (header, value_prefix, path_prefix)
        if identity in seen:
            raise ConfigError(
                path, number, f"duplicate KEY {key!r} (first on line {seen[identity]})"
            )
        seen[identity] = number
        rules.append(Rule(key, path_prefix, header, value_prefix, spec, number))
    return rules


def _parse_key(key: str) -> tuple[bytes | None, bytes, bytes]:
    if ":" not in key:
        return None, b"", key.encode("latin-1")
    name, _, rest = key.partition(":")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"bad header name in header rule {key!r}")
    parts = rest.split()
    if len(parts) < 2:
        raise ValueError(f"header rule {key!r} needs '<Header-Name>: <value-prefix> <path-prefix>'")
    value_prefix, path_prefix = " ".join(parts[:-1]), parts[-1]
    if not path_prefix.startswith("/"):
        raise ValueError(f"path prefix {path_prefix!r} of header rule must start with '/'")
    return name.lower().encode("latin-1"), value_prefix.encode("latin-1"), path_prefix.encode()


def parse_target(text: str, base_dir: Path) -> HandlerSpec:
    """`TARGET [name=value ...]` -> HandlerSpec, with the kind decided as the design says."""
    tokens = text.split()
    urls: list[str] = []
    while tokens and tokens[0].startswith(("http://", "https://")):
        urls.append(tokens.pop(0))
    if urls:
        kind, target, path, func = "proxy", " ".join(urls), " ".join(urls), ""
    else:
        target = tokens.pop(0)
        kind, path, func = _classify(target, base_dir)
    options: list[tuple[str, str]] = []
    for token in tokens:
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise ValueError(f"malformed option {token!r} (expected name=value)")
        if name not in _REPEATABLE and any(name == other for other, _ in options):
            raise ValueError(f"option {name!r} given twice")
        options.append((name, value))
    return HandlerSpec(kind, target, path, tuple(options), base_dir, func)


def _classify(target: str, base_dir: Path) -> tuple[str, str, str]:
    """Return (kind, resolved path, function name) for a non-URL TARGET."""
    match = _SCHEME.match(target)
    scheme = match.group(1) if match else ""
    if scheme and scheme not in _KNOWN_SCHEMES:
        raise ValueError(f"unknown target kind {scheme + ':'!r} in {target!r}")
    if scheme == "lambda":
        file, func = _file_and_func(target[len("lambda:") :], target, required=True)
        return "lambda", _resolve(file, base_dir), func
    if scheme == "lambda-runtime":
        return "lambda-runtime", _resolve(_nonempty(target[15:], target), base_dir), ""
    if scheme == "worker":
        return "worker", _resolve(_py_file(target[len("worker:") :], target), base_dir), ""
    if scheme == "sam":  # a SAM template: one target, routed inside (kinds/aws/sam.py)
        return "sam", _resolve(_nonempty(target[len("sam:") :], target), base_dir), ""
    if scheme == "python":
        file, func = _file_and_func(target[len("python:") :], target, required=False)
        return "python", _resolve(file, base_dir), func or "handle_request"
    if scheme == "wasm":
        file = _nonempty(target[len("wasm:") :], target)
        if not file.endswith((".wasm", ".wat")):
            raise ValueError(f"{target!r} must name a .wasm or .wat file")
        return "wasm", _resolve(file, base_dir), ""
    if target.endswith(".py"):
        return "python", _resolve(target, base_dir), "handle_request"
    return "native", _resolve(target, base_dir), ""


def _file_and_func(rest: str, target: str, *, required: bool) -> tuple[str, str]:
    file, _, func = rest.partition(".py:")
    if not _:
        if required:
            raise ValueError(f"{target!r} must be 'lambda:FILE.py:FUNCTION'")
        return _py_file(rest, target), ""
    if not func.isidentifier():
        raise ValueError(f"bad function name {func!r} in {target!r}")
    return _nonempty(file, target) + ".py", func


def _py_file(rest: str, target: str) -> str:
    if not rest.endswith(".py"):
        raise ValueError(f"{target!r} must name a .py file")
    return rest


def _nonempty(rest: str, target: str) -> str:
    if not rest:
        raise ValueError(f"no path in {target!r}")
    return rest


# Linux's NAME_MAX and PATH_MAX: a longer name makes every later look-up raise
# OSError(ENAMETOOLONG), which would escape as a traceback instead of a config error
_NAME_MAX = 255
_PATH_MAX = 4095


def _resolve(file: str, base_dir: Path) -> str:
    path = (base_dir / file) if not Path(file).is_absolute() else Path(file)
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX:
            raise ValueError(f"path component {part[:40]!r}... is over {_NAME_MAX} bytes")
    if len(str(path).encode("utf-8", "surrogateescape")) > _PATH_MAX:
        raise ValueError(f"path {str(path)[:40]!r}... is over {_PATH_MAX} bytes")
    return str(path)
