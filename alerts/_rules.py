"""The rule catalogue: rule id → rule. The same objects serve the live path (inside ingest's
transaction), the scheduler and the replay; a rule reads a patient's history and returns a
verdict for its episode family. Pure: no I/O, no clock, no logging."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

import numpy as np

from alerts._history import History
from alerts._model import Point, Severity, StoredReading
from alerts._programs import LB, ThresholdSet, ThresholdValue

__all__ = [
    "FAMILIES",
    "RULES",
    "Eval",
    "Family",
    "Finding",
    "Rule",
    "Verdict",
]

MMOL = 18.016  # mg/dL per mmol/L


@dataclass(frozen=True, slots=True)
class Family:
    """An episode family: one active episode per (patient, family)."""

    id: str
    direction: str  # "high": worst = max, "low": worst = min
    clear_hold: timedelta  # the condition must stay clear this long before the episode clears
    device: bool = False  # device health / data completeness: always auto-resolves on clear
    inhibited_by: tuple[str, ...] = ()
    clinical_bp: bool = False


FAMILIES: Mapping[str, Family] = {
    f.id: f
    for f in (
        Family("bp_crisis", "high", timedelta(0)),
        Family("bp_high", "high", timedelta(hours=24), inhibited_by=("bp_crisis",)),
        Family("bp_mean", "high", timedelta(days=3), inhibited_by=("bp_crisis",)),
        Family("bp_low", "low", timedelta(hours=24)),
        Family("weight_gain", "high", timedelta(hours=48)),
        Family("glucose_low", "low", timedelta(hours=24)),
        Family("glucose_high", "high", timedelta(hours=24)),
        Family(
            "missing_data", "high", timedelta(0), device=True, inhibited_by=("gateway_offline",)
        ),
        Family("gateway_offline", "high", timedelta(0), device=True),
        Family("battery_low", "low", timedelta(0), device=True),
        Family("device_clock", "high", timedelta(days=7), device=True),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's positive result: what fired, how bad, and why (in words and readings)."""

    rule_id: str
    family: str
    severity: Severity
    time: datetime  # clinical time of the evidence
    code: str
    value: float
    explanation: str
    evidence: tuple[uuid.UUID, ...]
    thresholds: Mapping[str, float]
    threshold_version: str
    confirm_by: datetime | None = None  # set: wait for a re-measure until then (pending)


@dataclass(frozen=True, slots=True)
class Verdict:
    family: str
    finding: Finding | None = None
    clear: bool = False  # back past the hysteresis band
    disconfirm: bool = False  # a re-measure that does not confirm a pending episode


@dataclass(slots=True)
class Eval:
    """Everything a rule may look at: one reading (or, for a periodic rule, a moment)."""

    reading: StoredReading | None
    point: Point | None
    history: History
    thresholds: ThresholdSet
    tz: tzinfo
    at: datetime
    params: Mapping[str, ThresholdValue] = field(default_factory=dict)
    active: Collection[str] = ()  # families with an active episode (clearing matters)

    def p(self, name: str) -> float:
        return self.params[name].value

    def source(self, *names: str) -> str:
        """'program X threshold' / 'site threshold (#7 v2)' / 'patient threshold (...)'."""
        chosen = [self.params[n] for n in names if n in self.params]
        patient = [v for v in chosen if v.scope == "patient"]
        site = [v for v in chosen if v.scope == "site"]
        if patient:
            v = patient[-1]
            who = f", ordered by {v.ordered_by}" if v.ordered_by else ""
            return f"patient threshold (override #{v.version_id} v{v.version}{who})"
        if site:
            v = site[-1]
            return f"site threshold (override #{v.version_id} v{v.version})"
        return f"program {self.thresholds.program} threshold"


class Rule:
    """Base: a rule id, its episode family, the reading types it reads and its source."""

    kind = "rule"
    periodic = False  # evaluated on a clock (scheduler, replay), not on each reading

    def __init__(self, rule_id: str, family: str, types: frozenset[str], description: str):
        self.id = rule_id
        self.family = family
        self.types = types
        self.description = description

    def evaluate(self, ev: Eval) -> Verdict | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        """Whether ``evaluate`` on this reading may read the patient's history. The live path
        loads history only when some rule wants it; a rule must not read history otherwise
        (so that a normal reading costs no history query)."""
        return False

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(0)

    def finding(
        self,
        ev: Eval,
        severity: Severity,
        code: str,
        value: float,
        explanation: str,
        evidence: tuple[uuid.UUID, ...],
        confirm_by: datetime | None = None,
    ) -> Verdict:
        return Verdict(
            self.family,
            Finding(
                rule_id=self.id,
                family=self.family,
                severity=severity,
                time=ev.at,
                code=code,
                value=value,
                explanation=explanation,
                evidence=evidence,
                thresholds={k: v.value for k, v in ev.params.items()},
                threshold_version=ev.thresholds.version_label(self.id),
                confirm_by=confirm_by,
            ),
        )


def _bp(values: Mapping[str, float]) -> str:
    s, d = values.get("systolic"), values.get("diastolic")
    return f"{_n(s) if s is not None else '-'}/{_n(d) if d is not None else '-'}"


def _n(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def _kg(x: float) -> str:
    return f"{x:.1f} kg ({x / LB:.1f} lb)"


def _glucose(x: float) -> str:
    return f"{_n(x)} mg/dL ({x / MMOL:.1f} mmol/L)"


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours < 36:
        n = max(1, round(hours))
        return f"{n} hour" + ("s" if n != 1 else "")
    days = round(hours / 24)
    return f"{days} days"


def _weight(point: Point, suspect_weight: float) -> float:
    return suspect_weight if point.suspect else 1.0


class ConfirmationRule(Rule):
    """A value at or above a crisis threshold asks for a re-measure: the episode waits
    (pending) and opens if the repeat within the window is still high (at or above the
    clear band, e.g. 179/110 after 194/109 confirms) or if no repeat comes. A repeat below the
    clear band disconfirms it."""

    kind = "confirmation"

    def _beyond(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        return (s is not None and s >= s_lim) or (d is not None and d >= d_lim)

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        band = (params["clear_systolic"].value, params["clear_diastolic"].value)
        return self._beyond(values, *band)

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(minutes=params["confirm_minutes"].value)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or ("systolic" not in pt.values and "diastolic" not in pt.values):
            return None
        window = timedelta(minutes=ev.p("confirm_minutes"))
        crisis = (ev.p("systolic"), ev.p("diastolic"))
        band = (ev.p("clear_systolic"), ev.p("clear_diastolic"))
        sys_value = pt.values.get("systolic", 0.0)
        above = self._beyond(pt.values, *crisis)
        still_high = self._beyond(pt.values, *band)
        if still_high or above:
            limit = f"{_n(crisis[0])}/{_n(crisis[1])}"
            src = ev.source("systolic", "diastolic")
        if still_high:
            # untrusted clocks still count here: a crisis is never ignored for its timestamp
            earlier = [
                p
                for p in ev.history.window(
                    "blood_pressure", pt.time - window, pt.time, trusted_only=False
                )
                if p.reading_id != pt.reading_id and self._beyond(p.values, *crisis)
            ]
            if earlier:
                first = earlier[0]
                text = (
                    f"Blood pressure {_bp(first.values)} confirmed by a repeat of "
                    f"{_bp(pt.values)} within {_n(window.total_seconds() / 60)} min; "
                    f"{src} ≥{limit} mmHg"
                )
                return self.finding(
                    ev,
                    Severity.CRITICAL,
                    "systolic",
                    sys_value,
                    text,
                    (first.reading_id, pt.reading_id),
                )
        if above:
            text = (
                f"Blood pressure {_bp(pt.values)}, at or above {limit} mmHg; re-measure "
                f"requested within {_n(window.total_seconds() / 60)} min; {src}"
            )
            if pt.suspect:
                # the cuff doubted it: unconfirmed, it asks for a call, not a page
                flags = ev.reading.flags if ev.reading is not None else ()
                text += " (device flagged the measurement: " + ", ".join(flags) + ")"
            return self.finding(
                ev,
                Severity.HIGH if pt.suspect else Severity.CRITICAL,
                "systolic",
                sys_value,
                text,
                (pt.reading_id,),
                confirm_by=pt.time + window,
            )
        return Verdict(self.family, clear=not still_high, disconfirm=not still_high)


class CountRule(Rule):
    """N-of-M persistence: of the last M usable readings within the window, at least N (weighted;
    a cuff-error reading counts ``suspect_weight``) are beyond the level-1 threshold; severity
    rises to level 2 when N of them are beyond level 2. Clears when the last two readings are
    back inside the clear band."""

    kind = "n_of_m"

    def __init__(
        self,
        rule_id: str,
        family: str,
        description: str,
        direction: str,
        severities: tuple[Severity, Severity],
    ):
        super().__init__(rule_id, family, frozenset({"blood_pressure"}), description)
        self.direction = direction
        self.severities = severities

    def _beyond(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        if self.direction == "high":
            return (s is not None and s >= s_lim) or (d is not None and d >= d_lim)
        return (s is not None and s < s_lim) or (d is not None and d < d_lim)

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        level1 = (params["level1_systolic"].value, params["level1_diastolic"].value)
        return active or self._beyond(values, *level1)

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def _inside(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        if self.direction == "high":
            return (s is None or s < s_lim) and (d is None or d < d_lim)
        return (s is None or s >= s_lim) and (d is None or d >= d_lim)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or not pt.time_trusted:
            return None
        if "systolic" not in pt.values and "diastolic" not in pt.values:
            return None
        l1 = (ev.p("level1_systolic"), ev.p("level1_diastolic"))
        if self.family not in ev.active and not self._beyond(pt.values, *l1):
            return None  # nothing to open and nothing to clear: no history needed
        n, m = ev.p("n"), int(ev.p("m"))
        sw = ev.p("suspect_weight")
        start = pt.time - timedelta(hours=ev.p("window_hours"))
        recent = ev.history.last("blood_pressure", pt.time, m, start)
        l2 = (ev.p("level2_systolic"), ev.p("level2_diastolic"))
        if self._beyond(pt.values, *l1):
            hits1 = [p for p in recent if self._beyond(p.values, *l1)]
            n2 = ev.p("level2_n") if "level2_n" in ev.params else n
            hits2 = [p for p in recent if self._beyond(p.values, *l2)]
            w2 = sum(_weight(p, sw) for p in hits2)
            level2 = w2 + 1e-9 >= n2
            w1 = sum(_weight(p, sw) for p in hits1)
            if level2 or w1 + 1e-9 >= n:
                limit = l2 if level2 else l1
                word = "at or above" if self.direction == "high" else "below"
                hits = hits2 if level2 else hits1
                src = ev.source(
                    "level2_systolic" if level2 else "level1_systolic",
                    "level2_diastolic" if level2 else "level1_diastolic",
                )
                single = w1 + 1e-9 < n and w2 + 1e-9 < n
                confirm_by = None
                if single:
                    # one reading at level 2 (hypotension <80/50): ask for a re-measure, as
                    # for a crisis; it opens if the repeat is still low or none comes
                    window = timedelta(minutes=15)
                    confirm_by = pt.time + window
                    text = (
                        f"Blood pressure {_bp(pt.values)} {word} {_n(limit[0])}/{_n(limit[1])} "
                        f"mmHg; re-measure requested within 15 min; {src}"
                    )
                else:
                    span = _span(pt.time - recent[0].time) if len(recent) > 1 else "one reading"
                    text = (
                        f"{len(hits)} of the last {len(recent)} blood pressures in {span} "
                        f"{word} {_n(limit[0])}/{_n(limit[1])} mmHg (latest {_bp(pt.values)}); "
                        + src
                    )
                return self.finding(
                    ev,
                    # N readings at level 2 make it the higher severity
                    self.severities[1] if level2 and w2 + 1e-9 >= n else self.severities[0],
                    "systolic",
                    pt.values.get("systolic", 0.0),
                    text,
                    tuple(p.reading_id for p in hits),
                    confirm_by=confirm_by,
                )
        last_two = recent[-2:]
        cs, cd = ev.p("clear_systolic"), ev.p("clear_diastolic")
        clear = len(last_two) == 2 and all(self._inside(p.values, cs, cd) for p in last_two)
        return Verdict(self.family, clear=clear, disconfirm=not self._beyond(pt.values, *l1))


class RollingMeanRule(Rule):
    """The weighted mean of home blood pressure over the window, once it holds at least
    ``min_n`` (weighted) readings, at or above the program's target. Periodic: evaluated by
    the scheduler (and the replay clock) every ``PERIOD``, not on each reading — a weekly mean
    is a review metric, and this keeps a normal reading free of history queries."""

    kind = "rolling_mean"
    periodic = True

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["window_days"].value)

    def evaluate(self, ev: Eval) -> Verdict | None:
        days = ev.p("window_days")
        pts = ev.history.window("blood_pressure", ev.at - timedelta(days=days), ev.at)
        sw = ev.p("suspect_weight")
        pairs = [
            (p, _weight(p, sw)) for p in pts if "systolic" in p.values and "diastolic" in p.values
        ]
        n_eff = sum(w for _, w in pairs)
        if not pairs or n_eff + 1e-9 < ev.p("min_n"):
            return None  # too few readings to judge either way
        ws = np.array([w for _, w in pairs])
        ms = float(np.average([p.values["systolic"] for p, _ in pairs], weights=ws))
        md = float(np.average([p.values["diastolic"] for p, _ in pairs], weights=ws))
        ls, ld = ev.p("systolic"), ev.p("diastolic")
        if ms >= ls or md >= ld:
            text = (
                f"{_n(days)}-day home blood pressure mean {ms:.0f}/{md:.0f} mmHg from "
                f"{len(pairs)} readings, at or above {_n(ls)}/{_n(ld)}; "
                + ev.source("systolic", "diastolic")
            )
            return self.finding(
                ev,
                Severity.LOW,
                "systolic",
                ms,
                text,
                tuple(p.reading_id for p, _ in pairs),
            )
        margin = ev.p("clear_margin")
        return Verdict(self.family, clear=ms < ls - margin and md < ld - margin)


class ChangeRule(Rule):
    """Weight now against the minimum of the previous window (24 h or 7 days)."""

    kind = "change"

    def __init__(self, rule_id: str, family: str, description: str, severity: Severity):
        super().__init__(
            rule_id, family, frozenset({"body_weight", "body_composition"}), description
        )
        self.severity = severity

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return "body_weight" in values

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or not pt.time_trusted or "body_weight" not in pt.values:
            return None
        hours = ev.p("window_hours")
        prior = [
            p
            for p in _weights(ev, pt.time - timedelta(hours=hours), pt.time, include_end=False)
            if not p.suspect and p.reading_id != pt.reading_id
        ]
        if not prior:
            return None
        low = min(prior, key=lambda p: (p.values["body_weight"], p.time))
        now_kg = pt.values["body_weight"]
        delta = now_kg - low.values["body_weight"]
        limit = ev.p("kg")
        if delta > limit + 1e-9:  # "more than": exactly 2 lb is not a gain of more than 2 lb
            per = "1 d" if hours <= 24 else f"{_n(hours / 24)} d"
            text = (
                f"Weight up {_kg(delta)} in {_span(pt.time - low.time)}, from "
                f"{low.values['body_weight']:.1f} to {now_kg:.1f} kg; "
                f"{ev.source('kg')} {limit:.1f} kg/{per}"
            )
            return self.finding(
                ev, self.severity, "body_weight", delta, text, (low.reading_id, pt.reading_id)
            )
        return Verdict(self.family, clear=delta < limit - ev.p("clear_margin_kg"))


def _weights(ev: Eval, start: datetime, end: datetime, *, include_end: bool = True) -> list[Point]:
    """The body weights in ``[start, end]`` from scales and body-composition scales alike."""
    return [
        p
        for t in ("body_weight", "body_composition")
        for p in ev.history.window(t, start, end, include_end=include_end)
        if "body_weight" in p.values
    ]


class SlopeRule(Rule):
    """Least-squares weight slope (numpy) over the window, with a minimum number of readings
    and a minimum time span."""

    kind = "slope"

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return "body_weight" in values

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["window_days"].value)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or not pt.time_trusted or "body_weight" not in pt.values:
            return None
        days = ev.p("window_days")
        pts = _weights(ev, pt.time - timedelta(days=days), pt.time)
        if len(pts) < ev.p("min_n"):
            return None
        pts.sort(key=lambda p: p.time)
        span = (pts[-1].time - pts[0].time).total_seconds() / 86400
        if span < ev.p("min_span_days"):
            return None
        x = np.array([(p.time - pts[0].time).total_seconds() / 86400 for p in pts])
        y = np.array([p.values["body_weight"] for p in pts])
        w = np.sqrt(np.array([_weight(p, ev.p("suspect_weight")) for p in pts]))
        slope = float(np.polyfit(x, y, 1, w=w)[0])
        limit = ev.p("kg_per_day")
        if slope >= limit:
            text = (
                f"Weight rising {slope:.2f} kg/day ({slope * 7:.1f} kg, {slope * 7 / LB:.1f} lb "
                f"per week) over {_span(pts[-1].time - pts[0].time)} from {len(pts)} readings "
                f"(least squares), now {pt.values['body_weight']:.1f} kg; "
                f"{ev.source('kg_per_day')} {limit:.2f} kg/day"
            )
            return self.finding(
                ev,
                Severity.MODERATE,
                "body_weight",
                slope,
                text,
                tuple(p.reading_id for p in pts),
            )
        return Verdict(self.family, clear=slope < ev.p("clear_kg_per_day"))


class ThresholdRule(Rule):
    """Single-reading glucose threshold: below level 1 → moderate, below level 2 → high."""

    kind = "threshold"

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or "glucose" not in pt.values:
            return None
        v = pt.values["glucose"]
        l1, l2 = ev.p("level1"), ev.p("level2")
        if v < l1:
            level2 = v < l2
            limit = l2 if level2 else l1
            text = (
                f"Glucose {_glucose(v)}, below {_n(limit)} mg/dL; "
                + ev.source("level2" if level2 else "level1")
                + (" (level 2 hypoglycemia)" if level2 else " (level 1 hypoglycemia)")
            )
            sev = Severity.HIGH if level2 else Severity.MODERATE
            return self.finding(ev, sev, "glucose", v, text, (pt.reading_id,))
        return Verdict(self.family, clear=v >= ev.p("clear"))


class RepeatRule(Rule):
    """Glucose above a level ``count`` times within a window (ADA: >250 mg/dL twice in 24 h)."""

    kind = "repeat"

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return values.get("glucose", 0.0) > params["mg_dl"].value

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or "glucose" not in pt.values:
            return None
        v, limit = pt.values["glucose"], ev.p("mg_dl")
        if v > limit and pt.time_trusted:
            hours = ev.p("window_hours")
            pts = [
                p
                for p in ev.history.window("glucose", pt.time - timedelta(hours=hours), pt.time)
                if p.values.get("glucose", 0.0) > limit
            ]
            if sum(0.5 if p.suspect else 1.0 for p in pts) + 1e-9 >= ev.p("count"):
                text = (
                    f"Glucose above {_n(limit)} mg/dL {len(pts)} times in "
                    f"{_span(pt.time - pts[0].time)} (latest {_glucose(v)}); "
                    f"{ev.source('mg_dl')} >{_n(limit)} mg/dL x{_n(ev.p('count'))} in "
                    f"{_n(hours)} h"
                )
                return self.finding(
                    ev, Severity.MODERATE, "glucose", v, text, tuple(p.reading_id for p in pts)
                )
            return None
        return Verdict(self.family, clear=v <= ev.p("clear"))


class ConsecutiveDaysRule(Rule):
    """Glucose above a level on ``days`` consecutive calendar days (site time zone)."""

    kind = "consecutive_days"

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return values.get("glucose", 0.0) > params["mg_dl"].value

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["days"].value + 1)

    def evaluate(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or "glucose" not in pt.values:
            return None
        v, limit = pt.values["glucose"], ev.p("mg_dl")
        if v > limit and pt.time_trusted:
            days = int(ev.p("days"))
            today = pt.time.astimezone(ev.tz).date()
            pts = [
                p
                for p in ev.history.window("glucose", pt.time - timedelta(days=days + 1), pt.time)
                if p.values.get("glucose", 0.0) > limit
            ]
            seen = {p.time.astimezone(ev.tz).date() for p in pts}
            if all(today - timedelta(days=k) in seen for k in range(days)):
                text = (
                    f"Glucose above {_n(limit)} mg/dL on {days} consecutive days "
                    f"(latest {_glucose(v)}); {ev.source('mg_dl')} >{_n(limit)} mg/dL on "
                    f"{days} days"
                )
                return self.finding(
                    ev, Severity.HIGH, "glucose", v, text, tuple(p.reading_id for p in pts)
                )
            return None
        return Verdict(self.family, clear=v <= ev.p("clear"))


class FlagRule(Rule):
    """A device flag on a reading of the given types (meter HI/LO, device clock reset)."""

    kind = "flag"

    def __init__(
        self,
        rule_id: str,
        family: str,
        types: frozenset[str],
        description: str,
        flags: frozenset[str],
        severity: Severity,
        text: str,
        clears: bool,
    ):
        super().__init__(rule_id, family, types, description)
        self.flags = flags
        self.severity = severity
        self.text = text
        self.clears = clears

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return "count" in params and bool(self.flags.intersection(flags))

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return (
            timedelta(hours=params["window_hours"].value)
            if "window_hours" in params
            else timedelta(0)
        )

    def evaluate(self, ev: Eval) -> Verdict | None:
        r = ev.reading
        if r is None or "control_solution" in r.flags:
            return None
        if self.flags.intersection(r.flags):
            if "count" in ev.params:  # persistence: N flagged readings within the window
                start = r.time - timedelta(hours=ev.p("window_hours"))
                flagged = [
                    p
                    for t in sorted(self.types)
                    for p in ev.history.window(t, start, r.time, trusted_only=False)
                    if not p.time_trusted
                ]
                if len(flagged) < ev.p("count"):
                    return None
                evidence = tuple(p.reading_id for p in flagged)
                text = f"{self.text} ({len(flagged)} readings in {_n(ev.p('window_hours') / 24)} d)"
                return self.finding(ev, self.severity, self.id, len(flagged), text, evidence)
            return self.finding(ev, self.severity, self.id, 0.0, self.text, (r.reading_id,))
        return Verdict(self.family, clear=True) if self.clears else None


class TimedRule(Rule):
    """A rule evaluated by time rather than by a reading (the scheduler and the replay clock):
    missing data, gateway offline, battery low."""

    kind = "timed"

    def evaluate(self, ev: Eval) -> Verdict | None:
        return None


_BP = frozenset({"blood_pressure"})
_GLU = frozenset({"glucose"})
_ANY = frozenset({"blood_pressure", "glucose", "body_weight", "body_composition"})

RULES: Mapping[str, Rule] = {
    r.id: r
    for r in (
        ConfirmationRule(
            "bp_crisis",
            "bp_crisis",
            _BP,
            "Hypertensive crisis: systolic ≥180 and/or diastolic ≥120 mmHg (AHA/ACC 2017 "
            "guideline, hypertensive crisis), confirmed by a re-measure within 15 min or opened "
            "when no re-measure comes; maternal_postpartum uses ≥160/110 (ACOG Practice "
            "Bulletin 222, severe-range hypertension, confirm within 15 min).",
        ),
        CountRule(
            "bp_high",
            "bp_high",
            "Persistent high blood pressure: N of the last M home readings in the window at or "
            "above level 1 (160/100, ESC/ESH 2018 grade 2; maternal_postpartum ≥140/90 twice, "
            "ACOG Practice Bulletin 222 / Task Force on Hypertension in Pregnancy) → moderate; "
            "level 2 (170/105; maternal ≥150/100, ACOG postpartum treatment threshold) → high.",
            "high",
            (Severity.MODERATE, Severity.HIGH),
        ),
        RollingMeanRule(
            "bp_mean_7d",
            "bp_mean",
            _BP,
            "Uncontrolled hypertension: 7-day home BP mean ≥135/85 mmHg (AHA/ACC 2017 home "
            "BP equivalent of office 140/90; diabetes program ≥130/80, ADA Standards of Care "
            "target <130/80) with at least 12 readings (AHA 2019 home BP monitoring statement).",
        ),
        CountRule(
            "bp_low",
            "bp_low",
            "Hypotension: 2 of the last 3 readings in 48 h below 90/60 mmHg (AHA definition of "
            "low blood pressure) → moderate, as is a single reading below 80/50 confirmed by a "
            "re-measure within 15 min (or none coming); 2 of 3 below 80/50 → high.",
            "low",
            (Severity.MODERATE, Severity.HIGH),
        ),
        ChangeRule(
            "weight_gain_1d",
            "weight_gain",
            "Heart-failure fluid gain: weight more than 2 lb (0.9 kg) above the minimum of the "
            "last 24 h (HFSA/AHA patient guidance: report a gain of more than 2-3 lb in a day).",
            Severity.MODERATE,
        ),
        ChangeRule(
            "weight_gain_7d",
            "weight_gain",
            "Heart-failure fluid gain: weight more than 5 lb (2.3 kg) above the minimum of the "
            "last 7 days (HFSA/AHA patient guidance: more than 5 lb in a week).",
            Severity.HIGH,
        ),
        SlopeRule(
            "weight_trend",
            "weight_gain",
            frozenset({"body_weight", "body_composition"}),
            "Gradual weight gain: least-squares slope ≥0.25 kg/day over 7 days from ≥5 "
            "readings spanning ≥4 days (trend before HF hospitalisation: Chaudhry et al., "
            "Circulation 2007;116:1549).",
        ),
        ThresholdRule(
            "glucose_low",
            "glucose_low",
            _GLU,
            "Hypoglycemia: glucose <70 mg/dL (ADA level 1) → moderate; <54 mg/dL (ADA level 2, "
            "clinically significant) → high (ADA Standards of Care, Glycemic Targets).",
        ),
        FlagRule(
            "glucose_meter_lo",
            "glucose_low",
            _GLU,
            "Meter reports LO (below its measuring range, typically <20 mg/dL): treated as "
            "severe hypoglycemia (ADA level 2) without a number.",
            frozenset({"result_too_low"}),
            Severity.HIGH,
            "Meter reported LO (below its measuring range): possible severe hypoglycemia",
            clears=False,
        ),
        FlagRule(
            "glucose_meter_hi",
            "glucose_high",
            _GLU,
            "Meter reports HI (above its measuring range, typically >600 mg/dL): possible "
            "hyperglycemic crisis (ADA sick-day guidance).",
            frozenset({"result_too_high"}),
            Severity.HIGH,
            "Meter reported HI (above its measuring range): possible severe hyperglycemia",
            clears=False,
        ),
        RepeatRule(
            "glucose_high_24h",
            "glucose_high",
            _GLU,
            "Hyperglycemia: glucose >250 mg/dL twice within 24 h (ADA sick-day rules: call the "
            "care team).",
        ),
        ConsecutiveDaysRule(
            "glucose_high_2d",
            "glucose_high",
            _GLU,
            "Hyperglycemia: glucose >300 mg/dL on 2 consecutive days (ADA: persistent "
            "hyperglycemia above 300 mg/dL needs a call).",
        ),
        FlagRule(
            "device_clock_reset",
            "device_clock",
            _ANY,
            "Device health: the device's clock is unset or was reset on 2 readings within 7 days, "
            "so readings are timed by the gateway (Bluetooth SIG GATT Date Time; CareBeacon "
            "two-clock rule).",
            frozenset({"device_clock_reset", "device_clock_unset"}),
            Severity.LOW,
            "Device clock unset or reset: readings are timed on arrival; set the device's clock",
            clears=True,
        ),
        TimedRule(
            "missing_data",
            "missing_data",
            _ANY,
            "Missing data: no reading for N days: hypertension 3, heart_failure 2 (daily "
            "weights, HFSA), diabetes 3, maternal_postpartum 2 (twice-daily postpartum BP "
            "checks, ACOG Committee Opinion 736), general 7; also guards the CMS RPM 16-day "
            "data requirement.",
        ),
        TimedRule(
            "gateway_offline",
            "gateway_offline",
            _ANY,
            "Device health: the patient's home gateway has been offline for more than 6 h.",
        ),
        TimedRule(
            "battery_low",
            "battery_low",
            _ANY,
            "Device health: a device's battery reported at or below 15 % by the gateway.",
        ),
    )
}
