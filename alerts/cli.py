"""``carebeacon alerts …``: replay a cohort through the rule set, generate a synthetic cohort,
measure the rule set against labelled events and a naive baseline. No database needed.

    carebeacon alerts replay COHORT.json [--set [PROGRAM:]RULE.PARAM=VALUE ...]
    carebeacon alerts cohort OUT.json [--patients 500] [--days 90] [--seed N]
    carebeacon alerts measure [COHORT.json] [--patients 500] [--days 90] [--seed N]
    carebeacon alerts rules
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from alerts._programs import TEMPLATES, Override
from alerts._replay import ReplayError, replay
from alerts._rules import RULES

__all__ = ["main"]


def _overrides(pairs: list[str]) -> list[Override]:
    out = []
    for n, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ReplayError(f"--set needs PARAM=VALUE, got {pair!r}")
        out.append(Override("program", key.strip(), float(value), -1000 - n, 1000 + n))
    return out


def _load(path: str) -> dict[str, Any]:
    with Path(path).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="carebeacon alerts", description="alert tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_replay = sub.add_parser("replay", help="print the episodes a cohort would raise (JSON lines)")
    p_replay.add_argument("cohort", help="cohort JSON file")
    p_replay.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[PROGRAM:]RULE.PARAM=VALUE",
        help="try a program threshold change, e.g. heart_failure:weight_gain_7d.kg=2.0",
    )
    p_cohort = sub.add_parser("cohort", help="write a synthetic cohort with labelled events")
    p_cohort.add_argument("out")
    p_measure = sub.add_parser("measure", help="rule set vs labelled events and naive baseline")
    p_measure.add_argument("cohort", nargs="?", help="cohort JSON (default: generate one)")
    for p in (p_cohort, p_measure):
        p.add_argument("--patients", type=int, default=500)
        p.add_argument("--days", type=int, default=90)
        p.add_argument("--seed", type=int, default=20261123)
    p_measure.add_argument("--set", action="append", default=[])
    sub.add_parser("rules", help="print the rule catalogue and program templates")
    args = parser.parse_args(argv)

    try:
        if args.command == "replay":
            records = replay(_load(args.cohort), program_overrides=_overrides(args.set))
            out = sys.stdout
            for rec in records:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            return 0
        if args.command == "cohort":
            from alerts.cohort import generate

            cohort = generate(args.patients, args.days, args.seed)
            Path(args.out).write_text(json.dumps(cohort), encoding="utf-8")
            print(
                f"{len(cohort['patients'])} patients, {len(cohort['readings'])} readings, "
                f"{len(cohort['events'])} labelled events → {args.out}"
            )
            return 0
        if args.command == "measure":
            from alerts.cohort import generate, measure

            cohort = (
                _load(args.cohort) if args.cohort else generate(args.patients, args.days, args.seed)
            )
            started = time.perf_counter()
            records = replay(cohort, program_overrides=_overrides(args.set))
            result = measure(cohort, records)
            result["replay_seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(result, indent=2, ensure_ascii=False))
            return 0
        for rule in RULES.values():
            programs = [t for t, rules in TEMPLATES.items() if rule.id in rules]
            print(f"{rule.id:18} {rule.kind:16} family={rule.family:15} {','.join(programs)}")
            print(f"    {rule.description}")
        return 0
    except (OSError, json.JSONDecodeError, ReplayError) as exc:
        print(f"carebeacon alerts: {exc}", file=sys.stderr)
        return 1
