"""A synthetic RPM cohort whose labelled events come from the guidelines, not from the rule set,
and an honest measurement of the rule set against it and against a naive baseline.

``generate(n_patients, days, seed)`` returns a replay cohort (``carebeacon alerts replay``
format: patients with ``program``/``programs``/``delivery_date``, readings, ``actions``) plus
``"events"`` (labelled true clinical events, each with its first reading) and ``"near_misses"``
(values just on the safe side of a guideline boundary, and artefacts such as a coat on the
scale, that must not page as emergencies).

Nothing here is imported from ``alerts``: every limit is written below from its guideline
(``GUIDE``), and values are drawn on both sides of it. Hard cases: confirmed severe BP pairs
just above the limit and pairs exactly at it; crises arriving hours late, with the re-measure in
a later batch; a second emergency days after the first was acknowledged; level-1
hypoglycaemia snoozed, then a meter LO; postpartum patients (with a delivery date) also enrolled
in hypertension; postpartum symptom reports (``symptoms``) with a BP of 141-152 / 90-99;
heart-failure gains across a missed weigh-in, weigh-ins at drifting times,
scales whose clock was reset, single outliers up and down, patients who stop weighing but keep
measuring BP; isolated low diastolic pressures; gateway outages; duplicate deliveries; cuff
errors; control-solution tests; device clocks reset for weeks. ``actions``: an acknowledgement
20 min after a severe BP, snoozes, a resolve with an outcome the day after most events, and a
weekly review call that resolves whatever is still open (every resolve carries a note).

``measure(cohort, records)`` scores the replay output honestly: an event counts as caught only
through a *notification* (``notify``) of a matching family at or after the event's first reading
arrived — an episode left open from earlier catches nothing — and it is scored for time (the
guideline's deadline) and priority. It reports events caught, median and worst time from the
event's first reading to the first notification, clinical episodes per patient-week against a
naive one-alert-per-abnormal-reading baseline, and over-triage on the near misses.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from alerts import ReplayError, program_overrides, replay
from alerts.cli import load_cohort
from carebeacon.progress import track

__all__ = [
    "EVENT_FAMILIES",
    "GUIDE",
    "KINDS",
    "Kind",
    "generate",
    "main",
    "measure",
    "naive_alerts",
]

START = datetime(2026, 1, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LB = 0.45359237  # kg (NIST SP 811)

# The guideline definitions the labels are drawn from (units: mmHg, mg/dL, kg), each with its
# source. Written here, never read from alerts/: a rule set that drifts from them loses events.
GUIDE: Mapping[str, float] = {
    # 2025 AHA/ACC High Blood Pressure Guideline: severe hypertension >180 and/or >120 (strict)
    "severe_systolic": 180.0,
    "severe_diastolic": 120.0,
    # ACOG Practice Bulletin 222 / Committee Opinion 767: severe range ≥160 or ≥110 (inclusive)
    "maternal_severe_systolic": 160.0,
    "maternal_severe_diastolic": 110.0,
    # ACOG PB 222: hypertension ≥140 or ≥90 on two occasions at least 4 h apart
    "maternal_systolic": 140.0,
    "maternal_diastolic": 90.0,
    "maternal_occasions_hours": 4.0,
    # AHA/ACC home BP corresponding to office 140/90 (7-day mean of ≥12 readings on ≥3 days)
    "home_mean_systolic": 135.0,
    "home_mean_diastolic": 85.0,
    # ADA Standards of Care 2026 §6: level 1 <70, level 2 <54 mg/dL
    "hypo_level1": 70.0,
    "hypo_level2": 54.0,
    # hypotension: systolic <90 mmHg (a low diastolic alone is not hypotension)
    "hypotension_systolic": 90.0,
    # HFSA/AHA: more than 2-3 lb in a day or 5 lb in a week; ESC 2021: more than 2 kg in 3 days
    "hf_day_kg": 2.0 * LB,
    "hf_week_kg": 5.0 * LB,
    "hf_3day_kg": 2.0,
}


@dataclass(frozen=True, slots=True)
class Kind:
    """How an event is scored: the episode families that catch it, the least urgent priority
    that is still right for it, and the time from its first reading's arrival within which a
    person must be notified (from the guideline)."""

    families: frozenset[str]  # empty: any family
    max_priority: int
    deadline: timedelta
    source: str
    clinical_only: bool = True  # a technical-queue item does not catch it


KINDS: Mapping[str, Kind] = {
    "maternal_severe": Kind(
        frozenset({"bp_crisis"}), 1, 30 * MIN, "ACOG CO 767: treat within 30-60 min"
    ),
    "severe_hypertension": Kind(
        frozenset({"bp_crisis"}), 2, HOUR, "2025 AHA/ACC: severe hypertension, prompt review"
    ),
    "maternal_symptom": Kind(
        frozenset(),  # any family: a critical notification, whichever episode carries it
        1,
        45 * MIN,
        "ACOG PB 222: severe headache, visual change, RUQ pain with BP ≥140/90",
    ),
    "postpartum_hypertension": Kind(
        frozenset({"bp_high", "bp_crisis"}), 3, 12 * HOUR, "ACOG PB 222: ≥140/90 twice ≥4 h"
    ),
    "uncontrolled_hypertension": Kind(
        frozenset({"bp_mean", "bp_high", "bp_crisis"}), 5, 10 * DAY, "AHA/AMA home BP protocol"
    ),
    "hypotension": Kind(frozenset({"bp_low"}), 3, DAY, "systolic <90 on two readings"),
    "hypoglycemia_level2": Kind(
        frozenset({"glucose_low"}), 2, HOUR, "ADA 2026 §6: level 2, same day for every tier"
    ),
    "hypoglycemia_level1": Kind(frozenset({"glucose_low"}), 4, DAY, "ADA 2026 §6: level 1"),
    "meter_lo": Kind(frozenset({"glucose_low"}), 2, HOUR, "meter LO: level 2 or worse"),
    "hyperglycemia": Kind(frozenset({"glucose_high"}), 4, 2 * DAY, "ADA sick-day guidance"),
    "hf_weight_gain": Kind(
        frozenset({"weight_gain"}), 3, 30 * HOUR, "HFSA: >2-3 lb/day or 5 lb/week; ESC 2 kg/3 d"
    ),
    "data_gap": Kind(
        frozenset({"missing_data"}), 5, 4 * DAY, "daily self-monitoring lapsed", False
    ),
}
EVENT_FAMILIES: Mapping[str, frozenset[str]] = {k: v.families for k, v in KINDS.items()}
# near-miss kind -> the families whose notification would be over-triage, and how urgent
_NEAR_MISS: Mapping[str, tuple[frozenset[str], int]] = {
    "bp_at_severe_limit": (frozenset({"bp_crisis"}), 1),  # ≤180/120, or unconfirmed
    "maternal_below_severe": (frozenset({"bp_crisis"}), 1),  # 150-159 / 100-109
    "isolated_low_diastolic": (frozenset({"bp_low"}), 5),
    "borderline_home_mean": (frozenset({"bp_mean"}), 5),
    "glucose_at_limit": (frozenset({"glucose_low"}), 5),  # 70-74 mg/dL
    "weight_outlier": (frozenset({"weight_gain"}), 2),  # a high episode from one outlier
}
_TECHNICAL = frozenset({"device_clock", "gateway_offline", "battery_low"})
_GRACE = DAY

_PROGRAMS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("hypertension",), 0.32),
    (("heart_failure",), 0.21),
    (("diabetes",), 0.21),
    (("maternal_postpartum",), 0.13),
    (("general",), 0.04),
    (("maternal_postpartum", "hypertension"), 0.05),
    (("heart_failure", "diabetes"), 0.04),
)
_UNIT = {
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "pulse": "/min",
    "glucose": "mg/dL",
    "body_weight": "kg",
}


class _Patient:
    def __init__(self, rng: random.Random, programs: tuple[str, ...], days: int) -> None:
        self.rng = rng
        self.id = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.programs = programs
        self.risk_tier = rng.choices((1, 2, 3), (0.2, 0.5, 0.3))[0]
        self.days = days
        self.adherence = rng.uniform(0.8, 0.97)
        self.gateway = f"gw-{self.id.hex[:8]}"
        self.delivery: datetime | None = None
        self.readings: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.near: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.symptoms: list[dict[str, Any]] = []
        self.busy: set[int] = set()  # days taken by a scripted event (no routine BP then)
        self.gap: set[int] = set()  # days without any reading
        self.no_weight: set[int] = set()  # days without a weigh-in (BP continues)
        self.outage: tuple[int, int] | None = None  # readings of these days arrive late
        self.clock_reset: dict[str, tuple[int, int]] = {}  # device type -> days flagged
        self.bp_shift: dict[int, tuple[float, float]] = {}  # day -> (systolic, diastolic) added
        self.bp_cap: tuple[float, float] | None = None  # a labelled stretch stays below this
        self.stretch: tuple[str, int, int] | None = None  # (event kind, first day, end day)
        self.gain: tuple[int, int, int] | None = None  # weight: (label, end, onset day)
        self.weight_gap: tuple[int, int] | None = None

    def has(self, program: str) -> bool:
        return program in self.programs

    def free(
        self, lo: int, hi: int, span: int = 1, avoid: frozenset[int] = frozenset()
    ) -> int | None:
        """A day in [lo, hi) for a scripted event of ``span`` days, clear of the data gap (and
        of ``avoid``) by a day on each side, so the label and the data agree; None if none."""
        blocked = self.gap | avoid
        for _ in range(100):
            d = self.rng.randrange(lo, max(lo + 1, hi))
            if not blocked.intersection(range(d - 1, d + span + 1)):
                return d
        return None

    def day(self, lo: int, hi: int, span: int = 1) -> int:
        """:meth:`free`, or any day in range when the cohort is too short to keep clear."""
        d = self.free(lo, hi, span)
        return d if d is not None else self.rng.randrange(lo, max(lo + 1, hi))

    def reading(
        self,
        type_: str,
        at: datetime,
        values: Mapping[str, float],
        flags: Sequence[str] = (),
        received: datetime | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        day = (at - START).days
        arrival = received or at + timedelta(seconds=rng.uniform(2, 90))
        if received is None and self.outage and self.outage[0] <= day < self.outage[1]:
            arrival = START + timedelta(days=self.outage[1], hours=rng.uniform(9, 10))
        flags = list(flags)
        span = self.clock_reset.get(type_)
        measured: datetime | None = at
        if span and span[0] <= day < span[1]:
            flags.append("device_clock_reset")
            measured = None
        item: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "patient_id": str(self.id),
            "gateway_id": self.gateway,
            "device": {"id": f"{type_}-{self.id.hex[:6]}", "type": type_},
            "type": type_,
            "measured_at": measured.replace(tzinfo=None).isoformat() if measured else None,
            "received_at": arrival.isoformat(),
            "values": [
                {"code": k, "value": round(v, 2 if k == "body_weight" else 1), "unit": _UNIT[k]}
                for k, v in values.items()
            ],
            "flags": flags,
        }
        self.readings.append(item)
        if rng.random() < 0.03:  # duplicate delivery of the same reading
            dup = dict(item)
            dup["received_at"] = (arrival + timedelta(minutes=rng.uniform(1, 600))).isoformat()
            self.readings.append(dup)
        return item

    def bp(
        self, at: datetime, s: float, d: float, flags: Sequence[str] = (), **kw: Any
    ) -> dict[str, Any]:
        values = {"systolic": s, "diastolic": min(d, s - 10), "pulse": self.rng.gauss(74, 7)}
        return self.reading("blood_pressure", at, values, flags, **kw)

    def event(
        self,
        kind: str,
        first: Mapping[str, Any],
        end: datetime,
        onset: datetime | None = None,
        **extra: Any,
    ) -> None:
        """A labelled event. ``first``: its first reading that meets the guideline (time to
        notify counts from it); ``onset``: when the change began, if earlier (a notification
        from then on also catches it, e.g. a weight gain noticed a day before the label)."""
        measured = first["measured_at"] or first["received_at"][:19]
        self.events.append(
            {
                "patient_id": str(self.id),
                "kind": kind,
                "start": _aware(measured).isoformat(),
                "onset": (onset or _aware(measured)).isoformat(),
                "end": end.isoformat(),
                "first_reading": first["id"],
                "first_measured": _aware(measured).isoformat(),
                "first_arrival": first["received_at"],
                **extra,
            }
        )

    def near_miss(self, kind: str, item: Mapping[str, Any]) -> None:
        self.near.append(
            {
                "patient_id": str(self.id),
                "kind": kind,
                "reading": item["id"],
                "arrival": item["received_at"],
            }
        )

    def action(self, at: datetime, action: str, **extra: Any) -> None:
        self.actions.append(
            {"at": at.isoformat(), "patient_id": str(self.id), "action": action, **extra}
        )


def _aware(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _slot(day: int, hour: float, rng: random.Random, spread: float = 0.5) -> datetime:
    return START + timedelta(days=day, hours=hour + rng.gauss(0, spread))


# --- blood pressure ---------------------------------------------------------------------------


def _routine_bp(p: _Patient, base: tuple[float, float], per_day: int) -> None:
    """Home BP sessions with scatter, cuff errors (usually re-measured) and routine repeats."""
    rng = p.rng
    hours = (7.5, 19.5) if per_day == 2 else (8.0,)
    shift = p.bp_shift
    for day in range(p.days):
        if day in p.gap or day in p.busy:
            continue
        ds, dd = shift.get(day, (0.0, 0.0))
        for h in hours:
            if rng.random() > p.adherence:
                continue
            at = _slot(day, h, rng)
            s, d = rng.gauss(base[0] + ds, 6), rng.gauss(base[1] + dd, 4)
            if p.bp_cap is not None and day in shift:  # a labelled stretch stays non-severe
                s, d = min(s, p.bp_cap[0]), min(d, p.bp_cap[1])
            if rng.random() < 0.03:  # cuff error: spurious value, usually re-measured
                flags = rng.choice([["body_movement"], ["cuff_loose"], ["improper_position"], []])
                sign = rng.choice([1, 1, 1, -1])
                p.bp(at, s + sign * rng.uniform(30, 60), d + sign * rng.uniform(10, 25), flags)
                if rng.random() < 0.8:
                    p.bp(at + timedelta(minutes=rng.uniform(2, 6)), rng.gauss(s, 4), d)
                continue
            p.bp(at, s, d)
            if rng.random() < 0.10:
                p.bp(at + timedelta(minutes=rng.uniform(1, 4)), rng.gauss(s, 4), rng.gauss(d, 3))


def _severe_pair(
    p: _Patient, day: int, maternal: bool, *, late: bool = False, kind: str | None = None
) -> datetime:
    """A confirmed severe BP: a reading in the severe range and a re-measure 3-8 min later that
    is itself severe; near the limit 40 % of the time. ``late``: both arrive hours later, the
    re-measure in a later batch."""
    rng = p.rng
    lim_s = GUIDE["maternal_severe_systolic"] if maternal else GUIDE["severe_systolic"]
    lim_d = GUIDE["maternal_severe_diastolic"] if maternal else GUIDE["severe_diastolic"]
    step = 0.0 if maternal else 1.0  # "≥" for ACOG, ">" for AHA/ACC
    near = rng.random() < 0.4
    at = START + timedelta(days=day, hours=rng.uniform(8, 21))
    if rng.random() < 0.7:  # systolic-driven
        s = lim_s + step + (rng.uniform(0, 3) if near else rng.uniform(3, 25))
        d = rng.uniform(lim_d - 25, lim_d - 3)
        s2, d2 = max(s + rng.gauss(0, 2), lim_s + step), d + rng.gauss(0, 3)
    else:
        d = lim_d + step + (rng.uniform(0, 2) if near else rng.uniform(2, 10))
        s = rng.uniform(lim_s - 18, lim_s - 2)
        s2, d2 = s + rng.gauss(0, 3), max(d + rng.gauss(0, 1.5), lim_d + step)
    at2 = at + timedelta(minutes=rng.uniform(3, 8))
    delay = timedelta(hours=rng.uniform(6.5, 8)) if late else None
    first = p.bp(at, s, d, received=at + delay if delay else None)
    p.bp(at2, s2, d2, received=at2 + delay + 20 * MIN if delay else None)
    label = kind or ("maternal_severe" if maternal else "severe_hypertension")
    p.event(label, first, at2 + HOUR, late=late, near_limit=near)
    p.busy.add(day)
    return at2 + (delay or timedelta(0))


def _severe_near_miss(p: _Patient, day: int, maternal: bool) -> None:
    """Just on the safe side: exactly at 180/120 (or 150-159 / 100-109 postpartum), or a
    severe first reading whose re-measure is not severe."""
    rng = p.rng
    at = START + timedelta(days=day, hours=rng.uniform(8, 21))
    at2 = at + timedelta(minutes=rng.uniform(3, 8))
    if maternal:
        s, d = rng.uniform(150, 159.4), rng.uniform(96, 109.4)
        first = p.bp(at, s, d)
        p.bp(at2, min(s + rng.gauss(0, 2), 159.4), min(d + rng.gauss(0, 2), 109.4))
        p.near_miss("maternal_below_severe", first)
        return
    roll = rng.random()
    if roll < 0.4:
        first = p.bp(at, 180, rng.uniform(95, 110))
        p.bp(at2, 180, rng.uniform(95, 110))
    elif roll < 0.7:
        first = p.bp(at, rng.uniform(165, 179), 120)
        p.bp(at2, rng.uniform(165, 179), 120)
    else:  # 181 once, then 165-175: not confirmed
        first = p.bp(at, rng.uniform(181, 186), rng.uniform(95, 108))
        p.bp(at2, rng.uniform(165, 175), rng.uniform(90, 104))
    p.near_miss("bp_at_severe_limit", first)
    p.busy.add(day)


def _acknowledged_then_new(p: _Patient, day: int, maternal: bool) -> None:
    """A confirmed severe BP acknowledged 20 min after it arrived (and resolved only later),
    then a new confirmed severe BP 2-4 days on: the second must notify again."""
    rng = p.rng
    arrived = _severe_pair(p, day, maternal)
    p.action(arrived + 20 * MIN, "acknowledge", note="called, treatment started")
    _severe_pair(p, day + rng.randint(2, 4), maternal)


_SYMPTOMS = ("severe_headache", "vision_change", "ruq_pain", "shortness_of_breath", "chest_pain")


def _symptom_with_bp(p: _Patient, day: int) -> None:
    """A postpartum symptom report (PB 222 severe features) with a BP of 141-152 / 90-99:
    below the severe range, but with the symptom it is critical."""
    rng = p.rng
    at = START + timedelta(days=day, hours=rng.uniform(8, 21))
    first = p.bp(at, rng.uniform(141, 152), rng.uniform(90, 99))
    p.bp(at + timedelta(minutes=rng.uniform(3, 8)), rng.uniform(141, 152), rng.uniform(90, 99))
    said = at + timedelta(minutes=rng.uniform(8, 15))
    p.symptoms.append(
        {
            "at": said.isoformat(),
            "patient_id": str(p.id),
            "symptoms": sorted(rng.sample(_SYMPTOMS, rng.randint(1, 2))),
        }
    )
    p.event("maternal_symptom", first, said + HOUR)
    p.busy.add(day)


def _postpartum_hypertension(p: _Patient, base: tuple[float, float]) -> None:
    """Several days at 145-158 / 92-104: hypertension by ACOG's definition, below severe."""
    rng = p.rng
    d0 = p.day(3, min(p.days, 35) - 6, 7)
    shift: dict[int, tuple[float, float]] = {}
    for k, d in enumerate(range(d0, d0 + rng.randint(4, 7))):
        ramp = min(1.0, (k + 1) / 2)
        shift[d] = (
            ramp * (rng.uniform(150, 156) - base[0]),
            ramp * (rng.uniform(95, 101) - base[1]),
        )
    p.bp_shift = shift
    p.bp_cap = (GUIDE["maternal_severe_systolic"] - 0.6, GUIDE["maternal_severe_diastolic"] - 0.6)
    p.stretch = ("postpartum_hypertension", min(shift), max(shift) + 1)


def _hypotension(p: _Patient, base: tuple[float, float]) -> None:
    rng = p.rng
    d0 = p.day(8, p.days - 5, 2)
    items = []
    for d in range(d0, d0 + 2):
        p.busy.add(d)
        for h in (7.5, 19.5):
            s = rng.uniform(80, GUIDE["hypotension_systolic"] - 2)
            items.append(p.bp(_slot(d, h, rng), s, min(rng.uniform(48, 58), base[1])))
    p.event("hypotension", items[0], START + timedelta(days=d0 + 2))


def _isolated_low_diastolic(p: _Patient, heart_failure: bool) -> None:
    rng = p.rng
    d0 = p.day(8, p.days - 5, 2)
    for d in range(d0, d0 + 2):
        p.busy.add(d)
        for h in (7.5, 19.5):
            s = rng.uniform(104, 112) if heart_failure else rng.uniform(146, 156)
            p.near_miss("isolated_low_diastolic", p.bp(_slot(d, h, rng), s, rng.uniform(52, 58)))


# --- weight -----------------------------------------------------------------------------------


def _weights(p: _Patient) -> None:
    """Daily weigh-ins around 07:00 (±40 min, so consecutive ones are not 24 h apart), missed
    days, outliers with and without a re-weigh, and labelled fluid gains."""
    rng = p.rng
    base = rng.gauss(88, 14)
    true: dict[int, float] = {d: base + rng.gauss(0, 0.05) for d in range(p.days)}
    if rng.random() < 0.3:
        d0 = p.day(10, p.days - 12, 10)
        if rng.random() < 0.5:  # fast: 2.6-3.5 lb a day for two days
            steps = [rng.uniform(2.6, 3.5) * LB for _ in range(2)]
        else:  # slow: about a pound a day for a week (>5 lb/week)
            steps = [rng.uniform(0.85, 1.1) * LB for _ in range(7)]
        total = 0.0
        for k in range(p.days - d0):
            if k < len(steps):
                total += steps[k]
            true[d0 + k] += total
        label_day = d0 if len(steps) == 2 else d0 + 5
        if len(steps) == 2 and rng.random() < 0.4:  # the first gain day's weigh-in is missed
            p.no_weight.add(d0)
        p.gain = (label_day, d0 + len(steps) + 2, d0)
    if rng.random() < 0.08:  # stops weighing for 4-6 days, keeps measuring BP
        taken = frozenset(range(p.gain[0] - 8, p.gain[1] + 1)) if p.gain else frozenset()
        s0 = p.free(8, p.days - 10, 7, taken)
        if s0 is not None:
            stop = set(range(s0, s0 + rng.randint(4, 6)))
            p.no_weight |= stop
            p.weight_gap = (min(stop), max(stop) + 1)
    if rng.random() < 0.1:  # a scale whose clock was reset: every weight timed on arrival
        p.clock_reset["body_weight"] = (0, p.days)
    gain = p.gain
    weighed: dict[int, dict[str, Any]] = {}
    for day in range(p.days):
        if day in p.gap or day in p.no_weight or rng.random() > max(p.adherence, 0.88):
            continue
        at = _slot(day, 7.0, rng, spread=0.6)
        kg = true[day] + rng.gauss(0, 0.15)
        if rng.random() < 0.03 and not (gain and gain[0] - 8 <= day <= gain[1]):
            jump = rng.choice([2.5, 2.2, -2.0])  # coat and shoes / a foot off the scale
            p.near_miss("weight_outlier", p.reading("body_weight", at, {"body_weight": kg + jump}))
            if rng.random() < 0.5:  # the patient re-weighs
                later = at + timedelta(minutes=rng.uniform(3, 15))
                weighed[day] = p.reading("body_weight", later, {"body_weight": kg})
            continue
        weighed[day] = p.reading("body_weight", at, {"body_weight": kg})
    if gain:
        first_day = next((d for d in sorted(weighed) if d >= gain[0]), None)
        if first_day is not None and first_day < gain[1]:
            p.event(
                "hf_weight_gain",
                weighed[first_day],
                START + timedelta(days=gain[1]),
                onset=START + timedelta(days=gain[2]),
                after_missed_day=first_day - 1 not in weighed,
            )
    if p.weight_gap:
        g0, g1 = p.weight_gap
        due = (START + timedelta(days=g0, hours=7)).isoformat()
        p.event(
            "data_gap",
            {"id": None, "measured_at": None, "received_at": due},
            START + timedelta(days=g1),
            reading_type="body_weight",
        )


# --- glucose ----------------------------------------------------------------------------------


def _glucose(p: _Patient) -> None:
    rng = p.rng
    base = rng.gauss(145, 18)
    lows: dict[int, str] = {}
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            lows[p.day(5, p.days - 2)] = rng.choice(["l1", "l1", "l2", "lo", "near"])
    highs: set[int] = set()
    if rng.random() < 0.12:
        h0 = p.day(5, p.days - 5, 3)
        highs = {h0, h0 + 1, h0 + 2}
    for day in range(p.days):
        if day in p.gap:
            continue
        for k, h in enumerate((7.0, 12.5, 18.5, 22.0)):
            if (k >= 2 and rng.random() < 0.5) or rng.random() > p.adherence:
                continue
            at = _slot(day, h, rng)
            mg = base * (1 + rng.gauss(0, 0.15))
            mg = max(mg, 85.0)
            if day in highs:
                mg = rng.uniform(300, 390)
            low = lows.get(day) if k == 1 else None
            if low == "l2":
                mg = rng.uniform(50, 53.9) if rng.random() < 0.5 else rng.uniform(38, 50)
                item = p.reading("glucose", at, {"glucose": mg})
                p.event("hypoglycemia_level2", item, at + HOUR, near_limit=mg > 50)
                continue
            if low == "l1":
                mg = rng.choice([54.0, rng.uniform(54, 69.9), rng.uniform(66, 69.9)])
                item = p.reading("glucose", at, {"glucose": mg})
                p.event("hypoglycemia_level1", item, at + HOUR, near_limit=mg > 66 or mg == 54)
                if rng.random() < 0.4:  # snoozed, then the meter reads LO a few hours later
                    p.action(at + 30 * MIN, "snooze", minutes=48 * 60)
                    at_lo = at + timedelta(hours=rng.uniform(3, 8))
                    lo = p.reading("glucose", at_lo, {}, ["result_too_low"])
                    p.event("meter_lo", lo, at_lo + HOUR, during_snooze=True)
                continue
            if low == "lo":
                item = p.reading("glucose", at, {}, ["result_too_low"])
                p.event("meter_lo", item, at + HOUR)
                continue
            if low == "near":
                mg = rng.uniform(70, 74.9)
                item = p.reading("glucose", at, {"glucose": mg})
                p.near_miss("glucose_at_limit", item)
                continue
            item = p.reading("glucose", at, {"glucose": mg})
            if day in highs and day == min(highs) and k == 0:
                p.event("hyperglycemia", item, START + timedelta(days=max(highs) + 1))
        if day % 7 == 3 and rng.random() < 0.6:  # control-solution test (normal or high level)
            level = rng.choice([rng.uniform(100, 130), rng.uniform(290, 340)])
            p.reading("glucose", _slot(day, 10.0, rng), {"glucose": level}, ["control_solution"])


# --- patients ---------------------------------------------------------------------------------


def _gen_patient(rng: random.Random, programs: tuple[str, ...], days: int) -> _Patient:
    p = _Patient(rng, programs, days)
    maternal = p.has("maternal_postpartum")
    if maternal:
        p.delivery = START - timedelta(days=rng.randint(1, 10))
    roll = rng.random()
    if roll < 0.08:  # travel, device left at home: no readings for 4-6 days
        g0 = rng.randrange(6, days - 10)
        p.gap = set(range(g0, g0 + rng.randint(4, 6)))
        first = {
            "id": None,
            "measured_at": None,
            "received_at": (START + timedelta(days=g0, hours=8)).isoformat(),
        }
        p.event("data_gap", first, START + timedelta(days=max(p.gap) + 1))
    elif roll < 0.13:  # gateway outage: readings of 3-6 days arrive at once
        o0 = rng.randrange(6, days - 10)
        p.outage = (o0, o0 + rng.randint(3, 6))
    if rng.random() < 0.05:  # a cuff whose clock reset, for 2-4 weeks
        c0 = rng.randrange(0, max(1, days - 30))
        p.clock_reset["blood_pressure"] = (c0, c0 + rng.randint(14, 28))

    window = min(days - 3, 38)  # postpartum events inside the 6-week window
    if maternal:
        base = (rng.gauss(122, 6), rng.gauss(78, 4))
        if rng.random() < 0.2:
            _postpartum_hypertension(p, base)
        r = rng.random()
        if r < 0.07:
            _severe_pair(p, p.day(2, window), True, late=rng.random() < 0.3)
        elif r < 0.11:
            _acknowledged_then_new(p, p.day(2, window - 5, 5), True)
        elif r < 0.2:
            _severe_near_miss(p, p.day(2, window), True)
        elif r < 0.25:
            _symptom_with_bp(p, p.day(2, window))
        _routine_bp(p, base, 2)
    elif p.has("hypertension") or p.has("general"):
        uncontrolled = p.has("hypertension") and rng.random() < 0.2
        borderline = not uncontrolled and p.has("hypertension") and rng.random() < 0.15
        if uncontrolled:
            base = (rng.uniform(140, 150), rng.uniform(88, 94))
        elif borderline:
            base = (rng.uniform(126, 131), rng.uniform(76, 80))
        else:
            base = (rng.gauss(124, 5), rng.gauss(77, 4))
        r = rng.random()
        if r < 0.05:
            _severe_pair(p, p.day(5, days - 5), False, late=rng.random() < 0.25)
        elif r < 0.08:
            _acknowledged_then_new(p, p.day(5, days - 9, 5), False)
        elif r < 0.16:
            _severe_near_miss(p, p.day(5, days - 5), False)
        if rng.random() < 0.05:
            _hypotension(p, base)
        elif rng.random() < 0.05:
            _isolated_low_diastolic(p, False)
        _routine_bp(p, base, 2 if p.has("hypertension") else 1)
        if uncontrolled:
            first = next(r for r in p.readings if r["type"] == "blood_pressure")
            p.event("uncontrolled_hypertension", first, START + timedelta(days=days))
        if borderline:
            p.near_miss("borderline_home_mean", p.readings[-1])
    else:
        base = (rng.gauss(120, 7), rng.gauss(74, 5))
        if p.has("heart_failure"):
            if rng.random() < 0.08:
                _hypotension(p, base)
            elif rng.random() < 0.06:
                _isolated_low_diastolic(p, True)
        elif rng.random() < 0.04:
            _severe_pair(p, p.day(5, days - 5), False)
        _routine_bp(p, base, 1)
    if p.has("heart_failure"):
        _weights(p)
    if p.has("diabetes"):
        _glucose(p)
    if p.stretch:  # the first reading of the labelled stretch that meets the definition
        kind, d0, d1 = p.stretch
        lo, hi = START + timedelta(days=d0), START + timedelta(days=d1)
        hits = sorted(
            (
                r
                for r in p.readings
                if r["type"] == "blood_pressure"
                and r["measured_at"]
                and not r["flags"]
                and lo <= _aware(r["measured_at"]) < hi
                and _meets_maternal(r)
            ),
            key=lambda r: r["measured_at"],
        )
        # PB 222 defines hypertension by the second occasion at least 4 h after a first one:
        # that reading meets the definition, and time to notify counts from it
        apart = timedelta(hours=GUIDE["maternal_occasions_hours"])
        second = next(
            (r for r in hits if _aware(r["measured_at"]) - _aware(hits[0]["measured_at"]) >= apart),
            None,
        )
        if second is not None:
            p.event(kind, second, hi, onset=lo)
    for week in range(1, days // 7 + 1):  # the weekly review call closes what is still open
        at = START + timedelta(days=7 * week - rng.uniform(0, 2), hours=rng.uniform(9, 16))
        p.action(at, "resolve", outcome="contacted_no_change", note="weekly review call")
    for e in p.events:  # the nurse follows up: resolved with an outcome the day after
        if e["kind"] in ("data_gap", "uncontrolled_hypertension") or rng.random() < 0.4:
            continue
        end = _aware(e["end"]) + timedelta(hours=rng.uniform(12, 30))
        p.action(
            end,
            "resolve",
            outcome=rng.choice(["medication_changed", "contacted_no_change", "education_provided"]),
            note="followed up by phone",
        )
    return p


def _meets_maternal(r: Mapping[str, Any]) -> bool:
    v = {x["code"]: x["value"] for x in r["values"]}
    return bool(
        v.get("systolic", 0) >= GUIDE["maternal_systolic"]
        or v.get("diastolic", 0) >= GUIDE["maternal_diastolic"]
    )


def generate(
    n_patients: int = 500, days: int = 90, seed: int = 20261123, *, progress: bool = False
) -> dict[str, Any]:
    """A cohort in the replay format plus labelled ``events`` and ``near_misses``;
    ``progress``: a bar on a terminal."""
    if days < 30:
        raise ValueError("a cohort needs at least 30 days")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    choices = [c for c, _ in _PROGRAMS]
    weights = [w for _, w in _PROGRAMS]
    patients = [
        _gen_patient(rng, rng.choices(choices, weights)[0], days)
        for _ in track(range(n_patients), desc="cohort", unit="patient", quiet=not progress)
    ]
    out_patients = []
    for p in patients:
        item: dict[str, Any] = {
            "id": str(p.id),
            "program": p.programs[-1],
            "risk_tier": p.risk_tier,
            "overrides": {},
        }
        if len(p.programs) > 1:
            item["programs"] = list(p.programs)
        if p.delivery is not None:
            item["delivery_date"] = p.delivery.date().isoformat()
        out_patients.append(item)
    actions = sorted(
        (a for p in patients for a in p.actions), key=lambda a: (a["at"], a["patient_id"])
    )
    return {
        "patients": out_patients,
        "readings": [r for p in patients for r in p.readings],
        "actions": actions,
        "symptoms": sorted((x for p in patients for x in p.symptoms), key=lambda x: x["at"]),
        "events": [e for p in patients for e in p.events],
        "near_misses": [n for p in patients for n in p.near],
        "days": days,
    }


# --- measurement ------------------------------------------------------------------------------


def _notifies(r: Mapping[str, Any]) -> bool:
    """Did this output line put an episode in front of a person? The replay says so in
    ``notify``; output without that field (older replays) counts only openings."""
    if "notify" in r:
        return bool(r["notify"])
    return bool(r["event"] == "open")


def _clinical(r: Mapping[str, Any]) -> bool:
    queue = r.get("queue")
    if queue is not None:
        return bool(queue == "clinical")
    return str(r["family"]) not in _TECHNICAL


@dataclass(frozen=True, slots=True)
class _Note:
    at: datetime
    family: str
    priority: int
    clinical: bool


def _score_events(
    events: Sequence[Mapping[str, Any]], notes: Mapping[str, list[_Note]]
) -> tuple[dict[str, dict[str, int]], list[float], list[float], list[dict[str, Any]]]:
    per_kind: dict[str, dict[str, int]] = {}
    from_measured: list[float] = []
    from_arrival: list[float] = []
    missed: list[dict[str, Any]] = []
    for e in events:
        kind = KINDS[e["kind"]]
        arrival = _aware(e["first_arrival"])
        measured = _aware(e["first_measured"])
        end = _aware(e["end"]) + _GRACE
        onset = min(_aware(e.get("onset") or e["first_measured"]), arrival)
        hits = [
            n
            for n in notes.get(e["patient_id"], ())
            if (not kind.families or n.family in kind.families)
            and (n.clinical or not kind.clinical_only)
            and onset - MIN <= n.at <= max(end, arrival + kind.deadline)
        ]
        tally = per_kind.setdefault(
            e["kind"], {"events": 0, "caught": 0, "in_time": 0, "right_priority": 0}
        )
        tally["events"] += 1
        if not hits:
            missed.append({"kind": e["kind"], "patient_id": e["patient_id"], "start": e["start"]})
            continue
        first = min(hits, key=lambda n: n.at)
        tally["caught"] += 1
        in_time = first.at <= arrival + kind.deadline
        tally["in_time"] += in_time
        urgent = [n.priority for n in hits if n.at <= arrival + kind.deadline]
        tally["right_priority"] += bool(urgent) and min(urgent) <= kind.max_priority
        from_measured.append(max(0.0, (first.at - measured).total_seconds() / 60))
        from_arrival.append(max(0.0, (first.at - arrival).total_seconds() / 60))
    return per_kind, from_measured, from_arrival, missed


def _minutes(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "worst": None}
    return {"median": round(statistics.median(values), 1), "worst": round(max(values), 1)}


def measure(cohort: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Score replayed output against the labelled events, the near misses and the naive
    baseline. An event is *caught* when a notification of one of its families comes at or after
    its first reading arrived (and before it ended, or its deadline); *in time* when that
    notification is within the guideline's deadline; *right priority* when a notification
    within the deadline is at least as urgent as the guideline asks."""
    days = int(cohort.get("days", 90))
    n = len(cohort["patients"])
    patient_weeks = n * days / 7
    notes: dict[str, list[_Note]] = {}
    episodes: dict[str, Mapping[str, Any]] = {}
    notifications = 0
    for r in records:
        if r["event"] == "open":
            episodes.setdefault(str(r["id"]), r)
        if _notifies(r):
            notifications += _clinical(r)
            notes.setdefault(str(r["patient_id"]), []).append(
                _Note(_aware(str(r["at"])), str(r["family"]), int(r["priority"]), _clinical(r))
            )
    events = list(cohort.get("events", ()))
    per_kind, from_measured, from_arrival, missed = _score_events(events, notes)
    totals = {
        k: sum(t[k] for t in per_kind.values())
        for k in ("events", "caught", "in_time", "right_priority")
    }
    near: dict[str, dict[str, int]] = {}
    for m in cohort.get("near_misses", ()):
        fams, urgent = _NEAR_MISS[m["kind"]]
        at = _aware(m["arrival"])
        hits = [
            x
            for x in notes.get(m["patient_id"], ())
            if x.family in fams and at - MIN <= x.at <= at + 30 * HOUR
        ]
        tally = near.setdefault(m["kind"], {"cases": 0, "any_notification": 0, "over_triaged": 0})
        tally["cases"] += 1
        tally["any_notification"] += bool(hits)
        tally["over_triaged"] += any(x.priority <= urgent for x in hits)
    clinical = [r for r in episodes.values() if _clinical(r)]
    naive = naive_alerts(cohort)
    by_family: dict[str, int] = {}
    for r in episodes.values():
        by_family[str(r["family"])] = by_family.get(str(r["family"]), 0) + 1
    ratio = round(len(clinical) / naive.height, 3) if naive.height else None
    return {
        "patients": n,
        "days": days,
        "patient_weeks": round(patient_weeks, 1),
        "readings_delivered": len(cohort["readings"]),
        "readings_unique": len({r["id"] for r in cohort["readings"]}),
        "actions": len(cohort.get("actions", ())),
        "labelled_events": totals["events"],
        "caught": {k: f"{t['caught']}/{t['events']}" for k, t in sorted(per_kind.items())},
        "caught_total": f"{totals['caught']}/{totals['events']}",
        "caught_in_time": {k: f"{t['in_time']}/{t['events']}" for k, t in sorted(per_kind.items())},
        "caught_in_time_total": f"{totals['in_time']}/{totals['events']}",
        "right_priority_total": f"{totals['right_priority']}/{totals['events']}",
        "right_priority": {
            k: f"{t['right_priority']}/{t['events']}" for k, t in sorted(per_kind.items())
        },
        "minutes_to_notify_from_measurement": _minutes(from_measured),
        "minutes_to_notify_from_arrival": _minutes(from_arrival),
        "missed": missed[:50],
        "near_misses": dict(sorted(near.items())),
        "episodes_opened": len(episodes),
        "episodes_clinical": len(clinical),
        "episodes_by_family": dict(sorted(by_family.items())),
        "episodes_per_patient_week": round(len(episodes) / patient_weeks, 3),
        "clinical_episodes_per_patient_week": round(len(clinical) / patient_weeks, 3),
        "clinical_notifications_per_patient_week": round(notifications / patient_weeks, 3),
        "naive_alerts": naive.height,
        "naive_alerts_per_patient_week": round(naive.height / patient_weeks, 3),
        "clinical_episodes_vs_naive": ratio,
        "clinical_episodes_vs_naive_target": 0.15,
        "alert_reduction": round(1 - ratio, 3) if ratio is not None else None,
    }


def _flat(cohort: Mapping[str, Any]) -> pl.DataFrame:
    rows = []
    for r in cohort["readings"]:
        values = {v["code"]: v["value"] for v in r["values"]}
        rows.append(
            {
                "id": r["id"],
                "patient": r["patient_id"],
                "type": r["type"],
                "time": r["measured_at"] or r["received_at"][:19],
                "sys": values.get("systolic"),
                "dia": values.get("diastolic"),
                "glucose": values.get("glucose"),
                "weight": values.get("body_weight"),
            }
        )
    schema = {
        "id": pl.String,
        "patient": pl.String,
        "type": pl.String,
        "time": pl.String,
        "sys": pl.Float64,
        "dia": pl.Float64,
        "glucose": pl.Float64,
        "weight": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def naive_alerts(cohort: Mapping[str, Any]) -> pl.DataFrame:
    """The naive baseline: one alert per unique reading beyond a simple limit, flags ignored —
    systolic ≥140 or diastolic ≥90 (office stage 2), systolic <90 or diastolic <60, glucose
    <70 or >250 mg/dL, weight more than 2 lb above the patient's previous weight."""
    df = _flat(cohort).unique(subset="id", keep="first")
    df = df.with_columns(pl.col("time").str.to_datetime(time_unit="us")).sort(["patient", "time"])
    weights = df.filter(pl.col("weight").is_not_null()).with_columns(
        (pl.col("weight") - pl.col("weight").shift(1).over("patient")).alias("gain")
    )
    df = df.join(weights.select(["id", "gain"]), on="id", how="left")
    alert = (
        (pl.col("sys") >= 140)
        | (pl.col("dia") >= 90)
        | (pl.col("sys") < 90)
        | (pl.col("dia") < 60)
        | (pl.col("glucose") < 70)
        | (pl.col("glucose") > 250)
        | (pl.col("gain") > 2 * LB)
    ).fill_null(False)
    return df.filter(alert).select(["id", "patient", "type", "time"])


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
                f"{len(cohort['actions'])} actions, {len(cohort['events'])} labelled events, "
                f"{len(cohort['near_misses'])} near misses → {args.out}"
            )
            return 0
        cohort = (
            load_cohort(args.cohort)
            if args.cohort
            else generate(args.patients, args.days, args.seed, progress=True)
        )
        started = time.perf_counter()
        records = replay(cohort, program_overrides=program_overrides(args.set), progress=True)
        result = measure(cohort, records)
        result["replay_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    except (OSError, ValueError, json.JSONDecodeError, ReplayError) as exc:
        print(f"carebeacon cohort: {exc}", file=sys.stderr)
        return 1
