"""The ``carebeacon`` console script: one table of subcommands, each owned by its package.

This is the one module allowed to reach every package, and it does so lazily: each entry names
``module:function``, imported only when that subcommand runs, so that a gateway install
(without the server extra) can run ``carebeacon gateway`` and ``carebeacon decode``. The
function takes the remaining arguments and returns an exit status.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from carebeacon import __version__

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # the product
    "gateway": ("gateway.service:main", "run a home gateway"),
    "decode": ("devices.cli:main", "decode a captured characteristic or advert (hex)"),
    "migrate": ("db.migrations:main", "apply the database migrations"),
    "ingest": ("ingest.service:main", "run the MQTT → TimescaleDB ingest service"),
    "scheduler": ("alerts.scheduler:main", "run the time-based rules and SLA escalation"),
    "alerts": ("alerts.cli:main", "replay a cohort through the rules; list the rules"),
    "web": ("web.app:main", "run the web app and API"),
    "admin": ("web.admin_cli:main", "users, API tokens, patients, gateways (on the database)"),
    # the tooling (lab/)
    "services": ("lab.services:main", "start/stop the project's own Mosquitto and TimescaleDB"),
    "seed": ("lab.seed:main", "create a site of care with its programs and one user per role"),
    "cohort": ("lab.cohort:main", "generate a synthetic alert cohort; measure the rules on it"),
    "demo": ("lab.demo:main", "run the whole system with emulated homes"),
    "bench": ("lab.bench:main", "benchmarks that print numbers"),
}


def _usage() -> str:
    lines = [
        "usage: carebeacon <command> [options]",
        "       carebeacon help <command> | --version",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Each command takes --help."]
    return "\n".join(lines)


def _run(name: str, rest: list[str]) -> int:
    module_name, func_name = SUBCOMMANDS[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"carebeacon {name}: not available in this install ({exc.name})", file=sys.stderr)
        return 2
    func: Callable[[list[str]], int] = getattr(module, func_name)
    try:
        return func(rest)
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        print(f"carebeacon {__version__}")
        return 0
    if args[0] == "help":
        if len(args) == 1:
            print(_usage())
            return 0
        args = [args[1], "--help"]
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"carebeacon: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return _run(name, rest)


if __name__ == "__main__":
    raise SystemExit(main())
