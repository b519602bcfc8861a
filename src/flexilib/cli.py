"""The `flexilib` command: serve (the default), check and routes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flexilib.config import ConfigError, Rule, load_config
from flexilib.settings import OPTIONS, Settings, SettingsError, resolve

__all__ = ["main"]

ENV_HELP = "environment (flags win): " + ", ".join(o.variable for o in OPTIONS if o.variable)


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        where = f"{option.variable}, " if option.variable else ""
        switch = {"nargs": "?", "const": "on"} if option.kind is bool else {}
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar,
            help=f"{option.help} ({where}default {option.default})",
            **switch,  # `--watch-config` alone means on
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flexilib",
        description="A web server that loads its request handlers at run time.",
        epilog=ENV_HELP,
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,check,routes}")
    serve = commands.add_parser("serve", help="run the server (the default)", epilog=ENV_HELP)
    _serve_flags(serve)
    check = commands.add_parser("check", help="parse the config and load every handler")
    check.add_argument("config", nargs="?", default="proxy.ini", help="default: ./proxy.ini")
    routes = commands.add_parser("routes", help="print the routing table as the server sees it")
    routes.add_argument("config", nargs="?", default="proxy.ini", help="default: ./proxy.ini")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    if args.command == "check":
        return check(Path(args.config))
    if args.command == "routes":
        return routes(Path(args.config))
    if args.sam and args.config:
        print("flexilib: --sam and --config exclude each other", file=sys.stderr)
        return 2
    if not args.sam:
        return _resolve_and_serve(args)
    import tempfile  # here only: every worker would hold it (and shutil, random) for nothing

    with tempfile.TemporaryDirectory(prefix="flexilib-sam-") as folder:
        args.config = _sam_config(Path(args.sam), Path(folder))
        return _resolve_and_serve(args)


def _resolve_and_serve(args: argparse.Namespace) -> int:
    try:
        settings = resolve(vars(args))
    except SettingsError as exc:
        print(f"flexilib: {exc}", file=sys.stderr)
        return 2
    return serve(settings)


def _sam_config(template: Path, folder: Path) -> str:
    """`--sam T`: a one-rule config `/ = sam:T`, written where SIGHUP can read it again."""
    config = folder / "proxy.ini"
    config.write_text(f"/ = sam:{template.absolute()}\n", encoding="utf-8")
    return str(config)


def _load(path: Path) -> list[Rule] | None:
    from flexilib.runtime.handler import validate_rules

    try:
        return validate_rules(load_config(path), path)
    except ConfigError as exc:
        print(f"flexilib: config error: {exc}", file=sys.stderr)
        return None


def serve(settings: Settings) -> int:
    from flexilib.log import diag, set_json
    from flexilib.master import block_signals, read_and_validate, run_master

    set_json(settings.log_format == "json")
    block_signals()  # a stop signal during start-up is taken as a stop, not a kill

    rules, error = read_and_validate(settings.config)
    if error is not None:
        if settings.log_format == "json":
            diag(f"config error: {error}")  # a log shipper reads this line too
        else:
            print(f"flexilib: config error: {error}", file=sys.stderr)
        return 2
    return run_master(settings, rules)


def routes(path: Path) -> int:
    rules = _load(path)
    if rules is None:
        return 2
    from flexilib.runtime.handler import handler_class

    print(f"# {path} ({len(rules)} routes, first match wins)")
    for rule in rules:
        options = " ".join(f"{k}={v}" for k, v in rule.spec.options)
        print(
            f"{rule.line:>4}  {rule.describe():<28} {rule.spec.kind:<14} {rule.spec.path} {options}"
        )
        for line in handler_class(rule.spec.kind).describe(rule.spec):
            print(f"{'':>6}{line}")
    return 0


def check(path: Path) -> int:
    """Load every handler once, in this process, and report each problem."""
    from flexilib.runtime.handler import create_handler

    rules = _load(path)
    if rules is None:
        return 2
    problems = 0
    loaded = {}
    for rule in rules:
        if rule.spec not in loaded:
            handler = create_handler(rule.spec)
            try:
                handler.load()
                loaded[rule.spec] = None
            except Exception as exc:  # noqa: BLE001 - every failure is a reported problem
                loaded[rule.spec] = exc
            finally:
                handler.close()
        error = loaded[rule.spec]
        if error is not None:
            problems += 1
            print(f"{path}:{rule.line}: {rule.key}: {error}")
        else:
            print(f"{path}:{rule.line}: {rule.key}: ok ({rule.spec.kind})")
    print(f"{len(rules)} routes, {problems} problem(s)")
    return 1 if problems else 0
