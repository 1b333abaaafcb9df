"""Benchmarks that print numbers (``carebeacon bench alerts|ingest|pages|queries``).

* ``alerts`` (:mod:`lab.bench.alerts`): readings/s of the live rules in ingest's transaction;
* ``ingest`` (:mod:`lab.bench.ingest`): readings/s and latency of ``carebeacon ingest`` against
  the subscriber-only and bare-COPY ceilings;
* ``pages`` (:mod:`lab.bench.pages`): the queue and patient pages' server time;
* ``queries`` (:mod:`lab.bench.queries`): the reads behind them on a generated population.

Each takes ``--help``. Nothing here is asserted in tests: figures are printed, medians quoted.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS: dict[str, tuple[str, str]] = {
    "alerts": ("lab.bench.alerts:main", "the live rules' readings/s in ingest's transaction"),
    "ingest": ("lab.bench.ingest:main", "ingest readings/s and latency vs its ceilings"),
    "pages": ("lab.bench.pages:main", "queue and patient pages' server time"),
    "queries": ("lab.bench.queries:main", "the app's read functions on a generated population"),
    "_publish": ("lab.bench.ingest:publish_main", ""),  # the simulated gateways' child process
}


def _usage() -> str:
    lines = ["usage: carebeacon bench <benchmark> [options]", "", "benchmarks:"]
    lines += [f"  {name:<8} {text}" for name, (_, text) in BENCHMARKS.items() if text]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] not in BENCHMARKS:
        print(f"carebeacon bench: unknown benchmark {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = BENCHMARKS[argv[0]][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    status: int = func(argv[1:])
    return status
