"""A synthetic RPM cohort with labelled true events and realistic noise, and the measurement
that compares the rule set with a naive one-alert-per-abnormal-reading system.

``generate(n_patients, days, seed)`` returns a replay cohort (``carebeacon alerts replay`` format) plus
``"events"``: the labelled true clinical events. Noise: measurement scatter, cuff errors (with
and without a device flag) usually followed by a re-measure, routine re-measures, duplicate
deliveries, glucose control-solution tests, clock-reset readings timed on arrival, gateway
outages delivering days of readings late, weight outliers (shoes, another person) and gaps.

``measure(cohort, records)`` reports true events caught, episodes per patient-week, and the
naive baseline on the same readings (each unique reading beyond a simple limit is one alert).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from alerts import ReplayError, program_overrides, replay
from alerts.cli import load_cohort
from carebeacon.progress import track

__all__ = ["EVENT_FAMILIES", "generate", "main", "measure", "naive_alerts"]

START = datetime(2026, 1, 5, tzinfo=UTC)
# which episode families count as catching each labelled event
EVENT_FAMILIES: Mapping[str, frozenset[str]] = {
    "hypertensive_crisis": frozenset({"bp_crisis"}),
    "uncontrolled_hypertension": frozenset({"bp_mean", "bp_high", "bp_crisis"}),
    "postpartum_hypertension": frozenset({"bp_high", "bp_crisis"}),
    "hf_decompensation": frozenset({"weight_gain"}),
    "hypoglycemia": frozenset({"glucose_low"}),
    "hyperglycemia": frozenset({"glucose_high"}),
    "hypotension": frozenset({"bp_low"}),
    "data_gap": frozenset({"missing_data"}),
}
_PROGRAMS = (
    ("hypertension", 0.35),
    ("heart_failure", 0.25),
    ("diabetes", 0.25),
    ("maternal_postpartum", 0.10),
    ("general", 0.05),
)
_GRACE = timedelta(days=1)


class _Patient:
    def __init__(self, rng: random.Random, program: str, days: int) -> None:
        self.id = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.program = program
        self.risk_tier = rng.choices((1, 2, 3), (0.2, 0.5, 0.3))[0]
        self.days = days
        self.adherence = rng.uniform(0.75, 0.97)
        self.gateway = f"gw-{self.id.hex[:8]}"
        self.readings: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.bp_shift: dict[int, tuple[float, float]] = {}  # day -> (sys, dia) added
        self.gap_days: set[int] = set()
        self.outage: tuple[int, int] | None = None  # days whose readings arrive late

    def event(self, kind: str, start: datetime, end: datetime) -> None:
        self.events.append(
            {
                "patient_id": str(self.id),
                "kind": kind,
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )


def _reading(
    rng: random.Random,
    p: _Patient,
    type_: str,
    at: datetime,
    values: Mapping[str, float],
    flags: Sequence[str] = (),
    device: str = "",
) -> dict[str, Any]:
    day = (at - START).days
    received = at + timedelta(seconds=rng.uniform(2, 90))
    if p.outage and p.outage[0] <= day < p.outage[1]:
        received = START + timedelta(days=p.outage[1], hours=rng.uniform(9, 10))
    flags = list(flags)
    measured: datetime | None = at
    if rng.random() < 0.01:
        flags.append("device_clock_reset")
        measured = None
        at = received
    item: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "patient_id": str(p.id),
        "gateway_id": p.gateway,
        "device": {"id": device or f"{type_}-{p.id.hex[:6]}", "type": type_},
        "type": type_,
        "measured_at": measured.replace(tzinfo=None).isoformat() if measured else None,
        "received_at": received.isoformat(),
        "values": [
            {"code": k, "value": round(v, 1 if k != "body_weight" else 2), "unit": _UNIT[k]}
            for k, v in values.items()
        ],
        "flags": flags,
    }
    p.readings.append(item)
    if rng.random() < 0.03:  # duplicate delivery of the same reading
        dup = dict(item)
        dup["received_at"] = (received + timedelta(minutes=rng.uniform(1, 600))).isoformat()
        p.readings.append(dup)
    return item


_UNIT = {
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "pulse": "/min",
    "glucose": "mg/dL",
    "body_weight": "kg",
}


def _bp_session(
    rng: random.Random, p: _Patient, at: datetime, sys_mean: float, dia_mean: float
) -> None:
    s = rng.gauss(sys_mean, 7)
    d = rng.gauss(dia_mean, 5)
    pulse = rng.gauss(72, 8)
    roll = rng.random()
    if roll < 0.03:  # cuff error: a spurious high (sometimes low) value
        flags = rng.choice([["body_movement"], ["cuff_loose"], ["improper_position"], []])
        s_err = s + rng.choice([1, 1, 1, -1]) * rng.uniform(30, 65)
        d_err = d + rng.uniform(10, 30) * (1 if s_err > s else -1)
        _reading(rng, p, "blood_pressure", at, _bp(s_err, d_err, pulse), flags)
        if rng.random() < 0.75:  # the patient re-measures
            at2 = at + timedelta(minutes=rng.uniform(2, 6))
            _reading(rng, p, "blood_pressure", at2, _bp(rng.gauss(s, 5), rng.gauss(d, 4), pulse))
        return
    _reading(rng, p, "blood_pressure", at, _bp(s, d, pulse))
    if rng.random() < 0.10:  # routine second measurement
        at2 = at + timedelta(minutes=rng.uniform(1, 4))
        _reading(rng, p, "blood_pressure", at2, _bp(rng.gauss(s, 4), rng.gauss(d, 3), pulse))


def _bp(s: float, d: float, pulse: float) -> dict[str, float]:
    d = min(d, s - 15)
    return {"systolic": s, "diastolic": d, "pulse": pulse}


def _slot(day: int, hour: float, rng: random.Random) -> datetime:
    return START + timedelta(days=day, hours=hour + rng.gauss(0, 0.5))


def _gen_bp(rng: random.Random, p: _Patient, base: tuple[float, float], per_day: int) -> None:
    hours = (7.5, 19.5) if per_day == 2 else (8.0,)
    for day in range(p.days):
        if day in p.gap_days:
            continue
        shift = p.bp_shift.get(day, (0.0, 0.0))
        for h in hours:
            if rng.random() > p.adherence:
                continue
            _bp_session(rng, p, _slot(day, h, rng), base[0] + shift[0], base[1] + shift[1])


def _crisis(rng: random.Random, p: _Patient, base: tuple[float, float], high: float) -> None:
    day = rng.randrange(10, p.days - 5)
    at = START + timedelta(days=day, hours=rng.uniform(9, 20))
    s = rng.uniform(high + 5, high + 30)
    d = rng.uniform(95, 125)
    _reading(rng, p, "blood_pressure", at, _bp(s, d, 88))
    at2 = at + timedelta(minutes=rng.uniform(3, 10))
    _reading(rng, p, "blood_pressure", at2, _bp(s + rng.gauss(0, 6), d + rng.gauss(0, 4), 86))
    p.event("hypertensive_crisis", at, at2)


def _gen_patient(rng: random.Random, program: str, days: int) -> _Patient:
    p = _Patient(rng, program, days)
    if rng.random() < 0.10:  # travel / device left at home: no readings for 4-6 days
        g0 = rng.randrange(5, days - 10)
        p.gap_days = set(range(g0, g0 + rng.randint(4, 6)))
        gap_end = START + timedelta(days=max(p.gap_days) + 1)
        if len(p.gap_days) >= _MISSING_DAYS[program]:  # a gap the program cares about
            p.event("data_gap", START + timedelta(days=g0), gap_end)
    elif rng.random() < 0.05:  # gateway outage: readings arrive days late, all at once
        o0 = rng.randrange(5, days - 10)
        p.outage = (o0, o0 + rng.randint(3, 7))
    if program == "hypertension":
        uncontrolled = rng.random() < 0.2
        base = (
            (rng.gauss(146, 6), rng.gauss(92, 4))
            if uncontrolled
            else (rng.gauss(124, 6), rng.gauss(77, 4))
        )
        if uncontrolled:
            p.event("uncontrolled_hypertension", START, START + timedelta(days=days))
        if rng.random() < 0.05:
            _hypotension(rng, p, base, 2)
        _gen_bp(rng, p, base, 2)
        if rng.random() < 0.08:
            _crisis(rng, p, base, 180)
    elif program == "maternal_postpartum":
        base = (rng.gauss(122, 6), rng.gauss(78, 4))
        if rng.random() < 0.2:
            d0 = rng.randrange(3, days - 10)
            length = rng.randint(5, 9)
            for k, d in enumerate(range(d0, d0 + length)):
                ramp = min(1.0, (k + 1) / 3)
                p.bp_shift[d] = (ramp * rng.uniform(25, 35), ramp * rng.uniform(15, 22))
            p.event(
                "postpartum_hypertension",
                START + timedelta(days=d0),
                START + timedelta(days=d0 + length),
            )
        _gen_bp(rng, p, base, 2)
        if rng.random() < 0.05:
            _crisis(rng, p, base, 160)
    elif program == "heart_failure":
        base = (rng.gauss(118, 8), rng.gauss(72, 5))
        if rng.random() < 0.10:
            _hypotension(rng, p, base, 3)
        _gen_bp(rng, p, base, 1)
        _gen_weight(rng, p)
    elif program == "diabetes":
        _gen_bp(rng, p, (rng.gauss(130, 8), rng.gauss(80, 5)), 1)
        _gen_glucose(rng, p)
    else:
        _gen_bp(rng, p, (rng.gauss(126, 8), rng.gauss(78, 5)), 1)
        if rng.random() < 0.05:
            _crisis(rng, p, (126, 78), 180)
    return p


def _hypotension(rng: random.Random, p: _Patient, base: tuple[float, float], days: int) -> None:
    """Overtreatment or over-diuresis: blood pressure around 82/54 for a few days."""
    d0 = rng.randrange(10, p.days - 5)
    target = (rng.uniform(80, 86), rng.uniform(52, 57))
    for d in range(d0, d0 + days):
        p.bp_shift[d] = (target[0] - base[0], target[1] - base[1])
    p.event("hypotension", START + timedelta(days=d0), START + timedelta(days=d0 + days))


_MISSING_DAYS = {
    "hypertension": 3,
    "heart_failure": 2,
    "diabetes": 3,
    "maternal_postpartum": 2,
    "general": 7,
}


def _gen_weight(rng: random.Random, p: _Patient) -> None:
    base = rng.gauss(88, 14)
    gain: dict[int, float] = {}
    if rng.random() < 0.25:
        d0 = rng.randrange(8, p.days - 12)
        length = rng.randint(4, 10)
        total = rng.uniform(2.6, 4.5)
        for k in range(length + 3):
            gain[d0 + k] = total * min(1.0, (k + 1) / length)
        p.event(
            "hf_decompensation",
            START + timedelta(days=d0),
            START + timedelta(days=d0 + length + 2),
        )
    drift = rng.gauss(0, 0.01)
    for day in range(p.days):
        if day in p.gap_days or rng.random() > max(p.adherence, 0.85):
            continue
        kg = base + drift * day + gain.get(day, 0.0) + rng.gauss(0, 0.3)
        if rng.random() < 0.02:  # shoes and coat, or someone else on the scale
            kg += rng.choice([1.8, 2.5, -2.0, 12.0])
        _reading(rng, p, "body_weight", _slot(day, 7.0, rng), {"body_weight": kg})


def _gen_glucose(rng: random.Random, p: _Patient) -> None:
    base = rng.gauss(145, 20)
    lows: set[int] = set()
    highs: set[int] = set()
    if rng.random() < 0.2:
        for _ in range(rng.randint(1, 3)):
            lows.add(rng.randrange(5, p.days - 2))
    if rng.random() < 0.15:
        h0 = rng.randrange(5, p.days - 5)
        highs = {h0, h0 + 1, h0 + 2}
        p.event("hyperglycemia", START + timedelta(days=h0), START + timedelta(days=h0 + 3))
    for day in range(p.days):
        if day in p.gap_days:
            continue
        for k, h in enumerate((7.0, 12.5, 18.5, 22.0)):
            if k >= 2 and rng.random() < 0.5:
                continue
            if rng.random() > p.adherence:
                continue
            at = _slot(day, h, rng)
            mg = base * math.exp(rng.gauss(0, 0.18))
            if day in highs:
                mg = rng.uniform(285, 390)
            if day in lows and k == 1:
                mg = rng.uniform(42, 66)
                p.event("hypoglycemia", at, at + timedelta(hours=1))
            _reading(rng, p, "glucose", at, {"glucose": mg})
        if day % 7 == 3 and rng.random() < 0.6:  # control-solution test (normal or high level)
            at = _slot(day, 10.0, rng)
            level = rng.choice([rng.uniform(100, 130), rng.uniform(290, 340)])
            _reading(rng, p, "glucose", at, {"glucose": level}, ["control_solution"])


def generate(
    n_patients: int = 500, days: int = 90, seed: int = 20261123, *, progress: bool = False
) -> dict[str, Any]:
    """A cohort in the replay format plus labelled ``events``; ``progress``: a bar on a
    terminal."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    programs = [name for name, _ in _PROGRAMS]
    weights = [w for _, w in _PROGRAMS]
    patients = [
        _gen_patient(rng, rng.choices(programs, weights)[0], days)
        for _ in track(range(n_patients), desc="cohort", unit="patient", quiet=not progress)
    ]
    return {
        "patients": [
            {"id": str(p.id), "program": p.program, "risk_tier": p.risk_tier, "overrides": {}}
            for p in patients
        ],
        "readings": [r for p in patients for r in p.readings],
        "events": [e for p in patients for e in p.events],
        "days": days,
    }


def _flat(cohort: Mapping[str, Any]) -> pl.DataFrame:
    rows = []
    program = {p["id"]: p["program"] for p in cohort["patients"]}
    for r in cohort["readings"]:
        values = {v["code"]: v["value"] for v in r["values"]}
        rows.append(
            {
                "id": r["id"],
                "patient": r["patient_id"],
                "program": program.get(r["patient_id"], "general"),
                "type": r["type"],
                "time": r["measured_at"] or r["received_at"][:19],
                "sys": values.get("systolic"),
                "dia": values.get("diastolic"),
                "glucose": values.get("glucose"),
                "weight": values.get("body_weight"),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def naive_alerts(cohort: Mapping[str, Any]) -> pl.DataFrame:
    """One alert per unique reading beyond a simple limit, flags ignored: systolic ≥140 or
    diastolic ≥90 (hypotension <90/60), glucose <70 or >250, weight more than 2 lb above
    the previous weight."""
    df = _flat(cohort).unique(subset="id", keep="first")
    df = df.with_columns(pl.col("time").str.to_datetime(time_unit="us")).sort(["patient", "time"])
    df = df.with_columns(
        pl.col("weight").shift(1).over("patient").alias("prev_weight"),
    )
    alert = (
        (pl.col("sys") >= 140)
        | (pl.col("dia") >= 90)
        | (pl.col("sys") < 90)
        | (pl.col("dia") < 60)
        | (pl.col("glucose") < 70)
        | (pl.col("glucose") > 250)
        | ((pl.col("weight") - pl.col("prev_weight")) > 0.907)
    ).fill_null(False)
    return df.filter(alert).select(["id", "patient", "program", "type", "time"])


def _caught(
    events: Sequence[Mapping[str, Any]],
    windows: Mapping[tuple[str, str], list[tuple[datetime, datetime]]],
) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for e in events:
        start = datetime.fromisoformat(e["start"])
        end = datetime.fromisoformat(e["end"]) + _GRACE
        hit = any(
            o <= end and c >= start
            for fam in EVENT_FAMILIES[e["kind"]]
            for o, c in windows.get((e["patient_id"], fam), ())
        )
        tally = out.setdefault(e["kind"], [0, 0])
        tally[0] += hit
        tally[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def measure(cohort: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compare replayed episodes with the labelled events and the naive baseline."""
    days = int(cohort.get("days", 90))
    n = len(cohort["patients"])
    patient_weeks = n * days / 7
    opened: dict[str, Mapping[str, Any]] = {}
    closed: dict[str, datetime] = {}
    for r in records:
        if r["event"] == "open":
            opened[r["id"]] = r
        elif r["event"] == "clear":
            closed[r["id"]] = datetime.fromisoformat(r["cleared_at"])
    far = datetime.max.replace(tzinfo=UTC)
    windows: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for eid, r in opened.items():
        windows.setdefault((r["patient_id"], r["family"]), []).append(
            (datetime.fromisoformat(r["opened_at"]), closed.get(eid, far))
        )
    caught = _caught(cohort.get("events", ()), windows)
    events_by_patient: dict[str, list[tuple[frozenset[str], datetime, datetime]]] = {}
    for e in cohort.get("events", ()):
        events_by_patient.setdefault(e["patient_id"], []).append(
            (
                EVENT_FAMILIES[e["kind"]],
                datetime.fromisoformat(e["start"]),
                datetime.fromisoformat(e["end"]) + _GRACE,
            )
        )
    explained = sum(
        1
        for eid, r in opened.items()
        if any(
            r["family"] in fams
            and datetime.fromisoformat(r["opened_at"]) <= end
            and closed.get(eid, far) >= start
            for fams, start, end in events_by_patient.get(r["patient_id"], ())
        )
    )
    clinical = [r for r in opened.values() if r["family"] not in _DEVICE_FAMILIES]
    naive = naive_alerts(cohort)
    naive_windows: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    fam_of = {"blood_pressure": "bp", "glucose": "glucose", "body_weight": "weight"}
    for pid, type_, t in zip(
        naive["patient"].to_list(), naive["type"].to_list(), naive["time"].to_list(), strict=True
    ):
        at = t.replace(tzinfo=UTC)
        for fam in _NAIVE_FAMILIES[fam_of.get(type_, "bp")]:
            naive_windows.setdefault((pid, fam), []).append((at, at))
    naive_caught = _caught(cohort.get("events", ()), naive_windows)
    unique_readings = len({r["id"] for r in cohort["readings"]})
    by_family: dict[str, int] = {}
    for r in opened.values():
        by_family[r["family"]] = by_family.get(r["family"], 0) + 1
    return {
        "patients": n,
        "days": days,
        "patient_weeks": round(patient_weeks, 1),
        "readings_delivered": len(cohort["readings"]),
        "readings_unique": unique_readings,
        "labelled_events": len(cohort.get("events", ())),
        "caught": {k: f"{a}/{b}" for k, (a, b) in sorted(caught.items())},
        "caught_total": f"{sum(a for a, _ in caught.values())}/{sum(b for _, b in caught.values())}",
        "episodes_opened": len(opened),
        "episodes_clinical": len(clinical),
        "episodes_by_family": dict(sorted(by_family.items())),
        "episodes_per_patient_week": round(len(opened) / patient_weeks, 3),
        "clinical_episodes_per_patient_week": round(len(clinical) / patient_weeks, 3),
        "urgent_episodes": sum(1 for r in opened.values() if r["priority"] <= 2),
        "episodes_on_a_labelled_event": explained,
        "naive_alerts": naive.height,
        "naive_alerts_per_patient_week": round(naive.height / patient_weeks, 3),
        "naive_caught": {k: f"{a}/{b}" for k, (a, b) in sorted(naive_caught.items())},
        "alert_reduction": round(1 - len(clinical) / naive.height, 3) if naive.height else None,
    }


_DEVICE_FAMILIES = frozenset({"missing_data", "gateway_offline", "battery_low", "device_clock"})
_NAIVE_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "bp": ("bp_crisis", "bp_high", "bp_mean", "bp_low"),
    "glucose": ("glucose_low", "glucose_high"),
    "weight": ("weight_gain",),
}


def main(argv: list[str]) -> int:
    """``carebeacon cohort generate OUT.json`` / ``carebeacon cohort measure [COHORT.json]``."""
    parser = argparse.ArgumentParser(
        prog="carebeacon cohort", description="synthetic alert cohorts and their measurement"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_generate = sub.add_parser("generate", help="write a synthetic cohort with labelled events")
    p_generate.add_argument("out")
    p_measure = sub.add_parser("measure", help="rule set vs labelled events and naive baseline")
    p_measure.add_argument("cohort", nargs="?", help="cohort JSON (default: generate one)")
    for p in (p_generate, p_measure):
        p.add_argument("--patients", type=int, default=500)
        p.add_argument("--days", type=int, default=90)
        p.add_argument("--seed", type=int, default=20261123)
    p_measure.add_argument(
        "--set", action="append", default=[], metavar="[PROGRAM:]RULE.PARAM=VALUE"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            cohort = generate(args.patients, args.days, args.seed, progress=True)
            Path(args.out).write_text(json.dumps(cohort), encoding="utf-8")
            print(
                f"{len(cohort['patients'])} patients, {len(cohort['readings'])} readings, "
                f"{len(cohort['events'])} labelled events → {args.out}"
            )
            return 0
        cohort = (
            load_cohort(args.cohort)
            if args.cohort
            else generate(args.patients, args.days, args.seed, progress=True)
        )
        started = time.perf_counter()
        # bars on stderr, on a terminal only: stdout is the JSON result
        records = replay(cohort, program_overrides=program_overrides(args.set), progress=True)
        result = measure(cohort, records)
        result["replay_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    except (OSError, json.JSONDecodeError, ReplayError) as exc:
        print(f"carebeacon cohort: {exc}", file=sys.stderr)
        return 1
