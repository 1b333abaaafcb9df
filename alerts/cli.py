"""``carebeacon alerts …``: replay a cohort (readings, symptom reports and a care team's
actions) through the rule set and the episode lifecycle, print the rule catalogue. No database
needed. (Synthetic cohorts and measurement: ``carebeacon cohort``.) The cohort format and the
output lines are described in ``alerts/_replay.py`` and ``alerts/README.md``.

    carebeacon alerts replay COHORT.json [--set [PROGRAM:]RULE.PARAM=VALUE ...]
    carebeacon alerts rules
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from alerts._programs import TEMPLATES
from alerts._replay import ReplayError, program_overrides, replay
from alerts._rules import RULES

__all__ = ["load_cohort", "main"]


def load_cohort(path: str) -> dict[str, Any]:
    with Path(path).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="carebeacon alerts", description="alert tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_replay = sub.add_parser(
        "replay",
        help="print the episode events a cohort would raise (JSON lines with queue and notify)",
        description="Replay a cohort file {patients, readings, actions?, symptoms?}: one JSON "
        "line per episode event (open, escalate, renotify, sla_escalate, clear, acknowledge, "
        "claim, snooze, suppressed), each with its queue (clinical|technical) and whether it "
        "notified a person. A bad cohort names the field at fault.",
    )
    p_replay.add_argument("cohort", help="cohort JSON file")
    p_replay.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[PROGRAM:]RULE.PARAM=VALUE",
        help="try a program threshold change, e.g. heart_failure:weight_gain_7d.kg=2.0",
    )
    sub.add_parser("rules", help="print the rule catalogue and program templates")
    args = parser.parse_args(argv)

    try:
        if args.command == "replay":
            records = replay(
                load_cohort(args.cohort),
                program_overrides=program_overrides(args.set),
                progress=True,  # on stderr, and only on a terminal: stdout is JSON lines
            )
            out = sys.stdout
            for rec in records:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            return 0
        for rule in RULES.values():
            programs = [t for t, rules in TEMPLATES.items() if rule.id in rules]
            print(f"{rule.id:18} {rule.kind:16} family={rule.family:15} {','.join(programs)}")
            print(f"    {rule.description}")
        return 0
    except (OSError, json.JSONDecodeError, ReplayError) as exc:
        print(f"carebeacon alerts: {exc}", file=sys.stderr)
        return 1
