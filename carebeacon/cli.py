"""The ``carebeacon`` console script: one table of subcommands, each owned by its package.

Each entry names ``module:function``; the function takes the remaining arguments and returns
an exit status. Modules are imported lazily so that a gateway install (without the server
extra) can run ``carebeacon gateway`` and ``carebeacon decode``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "services": ("carebeacon.services:main", "start/stop the project's Mosquitto and TimescaleDB"),
    "migrate": ("ingest.migrations:main", "apply the database migrations"),
    "ingest": ("ingest.service:main", "run the MQTT → TimescaleDB ingest service"),
    "decode": ("devices.cli:main", "decode a captured characteristic or advert (hex)"),
    "gateway": ("gateway.service:main", "run a home gateway"),
    "scheduler": ("alerts.scheduler:main", "run the time-based rules and SLA escalation"),
    "alerts": ("alerts.cli:main", "alert tools (replay a cohort)"),
    "web": ("web.app:main", "run the web app and API"),
    "demo": ("carebeacon.demo:main", "run the whole system with emulated homes"),
    "bench": ("carebeacon.bench:main", "benchmarks that print numbers"),
}


def _usage() -> str:
    lines = ["usage: carebeacon <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"carebeacon: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = SUBCOMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"carebeacon {name}: not available in this install ({exc.name})", file=sys.stderr)
        return 2
    func: Callable[[list[str]], int] = getattr(module, func_name)
    return func(rest)


if __name__ == "__main__":
    raise SystemExit(main())
