"""The rule catalogue: rule id → rule. The same objects serve the live path (inside ingest's
transaction), the scheduler and the replay; a rule reads a patient's history and returns a
verdict for its episode family. Pure: no I/O, no clock, no logging."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from alerts._history import History
from alerts._model import Point, ReadingColumns, Severity, StoredReading
from alerts._programs import LB, RuleParams, ThresholdSet, ThresholdValue

__all__ = [
    "EMERGENCY_SYMPTOMS",
    "FAMILIES",
    "REWEIGH_TEXT",
    "REWEIGH_WINDOW",
    "RULES",
    "SYMPTOMS",
    "SYMPTOM_TYPE",
    "Eval",
    "Family",
    "Finding",
    "Mask",
    "Rule",
    "Verdict",
]

MMOL = 18.016  # mg/dL per mmol/L
_T = TypeVar("_T")
Mask = npt.NDArray[np.bool_]  # one truth value per reading of a ReadingColumns


@dataclass(frozen=True, slots=True)
class Family:
    """An episode family: one active episode per (patient, family)."""

    id: str
    direction: str  # "high": worst = max, "low": worst = min
    clear_hold: timedelta  # the condition must stay clear this long before the episode clears
    device: bool = False  # device health / data completeness: always auto-resolves on clear
    inhibited_by: tuple[str, ...] = ()
    clinical_bp: bool = False
    # a finding of a rule run by time (periodic) opens nothing while an episode of one of these
    # families is active: that one already speaks for the condition, more urgently; the next
    # pass after it closes finds this one again if it lasts
    covered_by: tuple[str, ...] = ()


FAMILIES: Mapping[str, Family] = {
    f.id: f
    for f in (
        Family("bp_crisis", "high", timedelta(0)),
        Family("bp_high", "high", timedelta(hours=24), inhibited_by=("bp_crisis",)),
        # the home mean ≥135/85 says less than N of M home readings ≥145/90 (bp_high) or a
        # crisis: while one of those is open the mean is the same condition
        Family(
            "bp_mean",
            "high",
            timedelta(days=3),
            inhibited_by=("bp_crisis",),
            covered_by=("bp_crisis", "bp_high"),
        ),
        Family("bp_low", "low", timedelta(hours=24)),
        Family("weight_gain", "high", timedelta(hours=48)),
        Family("glucose_low", "low", timedelta(hours=24)),
        Family("glucose_high", "high", timedelta(hours=24)),
        # no readings at all, or none of a type the program requires (HF: weight) while others
        # arrive: one missing-data item per patient, whichever rule speaks for it
        Family(
            "missing_data", "high", timedelta(0), device=True, inhibited_by=("gateway_offline",)
        ),
        Family("gateway_offline", "high", timedelta(0), device=True),
        Family("battery_low", "low", timedelta(0), device=True),
        Family("device_clock", "high", timedelta(days=7), device=True),
        Family("symptom", "high", timedelta(0)),
        Family("program_notice", "high", timedelta(0)),
    )
}

# Symptom reports (API): the postpartum warning signs of ACOG PB 222 / AWHONN POST-BIRTH.
SYMPTOMS: Mapping[str, str] = {
    "severe_headache": "severe headache",
    "vision_change": "vision change",
    "ruq_pain": "right-upper-quadrant pain",
    "shortness_of_breath": "shortness of breath",
    "chest_pain": "chest pain",
}
# AWHONN POST-BIRTH: "Call 911 if you have pain in chest, obstructed breathing or shortness of
# breath" — critical on their own.
EMERGENCY_SYMPTOMS = frozenset({"shortness_of_breath", "chest_pain"})
SYMPTOM_TYPE = "symptom"


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


class Eval:
    """Everything a rule may look at: one reading (or, for a periodic rule, a moment).

    Assigning ``params`` (the engine assigns ``thresholds.rule(rule_id)``) resolves them at
    ``at``: after a postpartum window the set of the patient's other programs applies, or the
    rule is ``expired`` and says nothing."""

    __slots__ = (
        "_memo",
        "_params",
        "active",
        "at",
        "expired",
        "history",
        "point",
        "reading",
        "thresholds",
        "tz",
    )

    def __init__(
        self,
        reading: StoredReading | None,
        point: Point | None,
        history: History,
        thresholds: ThresholdSet,
        tz: tzinfo,
        at: datetime,
        params: Mapping[str, ThresholdValue] | None = None,
        active: Collection[str] = (),
        memo: dict[tuple[int, str], tuple[object, Any]] | None = None,
    ) -> None:
        self.reading = reading
        self.point = point
        self.history = history
        self.thresholds = thresholds
        self.tz = tz
        self.at = at
        self.active = active
        self.expired = False
        self._params: Mapping[str, ThresholdValue] = {}
        # what depends on the parameters alone (their values, version label, source text),
        # computed once per parameter set; shared by the Evals of one patient's readings
        self._memo = {} if memo is None else memo
        if params is not None:
            self.params = params

    @property
    def params(self) -> Mapping[str, ThresholdValue]:
        return self._params

    @params.setter
    def params(self, raw: Mapping[str, ThresholdValue]) -> None:
        self.expired = False
        if isinstance(raw, RuleParams) and self.thresholds.postpartum_end is not None:
            now = self.thresholds.rule_at(raw.rule_id, self.at)
            if now is None:
                self.expired = True
                raw = RuleParams(raw.rule_id, raw.origin)
            else:
                raw = now
        self._params = raw

    def memo(self, key: str, make: Callable[[], _T]) -> _T:
        """``make()``, once per parameter set and ``key`` (the set is kept with the value, so
        its id cannot be another set's)."""
        params = self._params
        hit = self._memo.get((id(params), key))
        if hit is not None and hit[0] is params:
            return cast(_T, hit[1])
        value = make()
        self._memo[(id(params), key)] = (params, value)
        return value

    def version_label(self, rule_id: str) -> str:
        """The threshold version of the set this rule speaks with now."""
        return self.memo(
            "version:" + rule_id, lambda: self.thresholds.version_label(rule_id, self.at)
        )

    def param_values(self) -> Mapping[str, float]:
        """The parameters' values (name → value), read-only."""
        return self.memo(
            "values", lambda: MappingProxyType({k: v.value for k, v in self._params.items()})
        )

    def p(self, name: str) -> float:
        return self.params[name].value

    def source(self, *names: str) -> str:
        """'program X threshold' / 'site threshold (#7 v2)' / 'patient threshold (...)'."""
        return self.memo("source:" + ",".join(names), lambda: self._source(names))

    def _source(self, names: tuple[str, ...]) -> str:
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
        origin = getattr(self._params, "origin", self.thresholds.template)
        name = self.thresholds.program if origin == self.thresholds.template else origin
        return f"program {name} threshold"


class Rule:
    """Base: a rule id, its episode family, the reading types it reads and its source."""

    kind = "rule"
    periodic = False  # evaluated on a clock (scheduler, replay), not on each reading

    def __init__(self, rule_id: str, family: str, types: frozenset[str], description: str):
        self.id = rule_id
        self.family = family
        self.types = types
        self.description = description

    def evaluate(self, ev: Eval) -> Verdict | None:
        """The rule's verdict on ``ev``; nothing when its program no longer applies."""
        if ev.expired:
            return None
        return self.check(ev)

    def check(self, ev: Eval) -> Verdict | None:  # pragma: no cover - abstract
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

    def reads_last(self, params: Mapping[str, ThresholdValue]) -> int | None:
        """When ``evaluate`` reads only the last N values of its window (N of M): N. The live
        path then need not read the whole window once N values are known."""
        return None

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        """Per reading of ``cols`` (all of one type this rule reads): True where ``evaluate``
        surely finds nothing in it, whatever the history, while no episode of the rule's
        family is active — the batch prefilter then spares it the history and the engine.
        ``None``: cannot tell, every reading goes through the engine (the default: a rule is
        prefiltered only where it says exactly when it stays silent)."""
        return None

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
                thresholds=ev.param_values(),
                threshold_version=ev.version_label(self.id),
                confirm_by=confirm_by,
            ),
        )


def _severe_v(cols: ReadingColumns, s_lim: float, d_lim: float, inclusive: bool) -> Mask:
    """:func:`_severe` over columns (a NaN — no usable value — is never beyond a limit)."""
    s, d = cols.values["systolic"], cols.values["diastolic"]
    if inclusive:
        return (s >= s_lim) | (d >= d_lim)
    return (s > s_lim) | (d > d_lim)


def _bp(values: Mapping[str, float]) -> str:
    s, d = values.get("systolic"), values.get("diastolic")
    return f"{_n(s) if s is not None else '-'}/{_n(d) if d is not None else '-'}"


def _n(x: float) -> str:
    # zero unremembered: 0.0 and -0.0 are one key to a cache, and print differently
    return _number(x) if x else _format_number(x)


def _format_number(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


#: the same few thousand pressures, pulses and limits, formatted once
_number = functools.lru_cache(maxsize=4096)(_format_number)


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


def _severe(values: Mapping[str, float], s_lim: float, d_lim: float, inclusive: bool) -> bool:
    """Systolic and/or diastolic beyond a pair of limits: ``>`` (2025 AHA/ACC severe
    hypertension, >180 and/or >120) or, when ``inclusive``, ``≥`` (ACOG severe range, ≥160
    and/or ≥110)."""
    s, d = values.get("systolic"), values.get("diastolic")
    if inclusive:
        return (s is not None and s >= s_lim) or (d is not None and d >= d_lim)
    return (s is not None and s > s_lim) or (d is not None and d > d_lim)


def _limit(ev: Eval, s_name: str = "systolic", d_name: str = "diastolic") -> str:
    def text() -> str:
        sign = "≥" if ev.params.get("inclusive") and ev.p("inclusive") else ">"
        return f"{sign}{_n(ev.p(s_name))}/{_n(ev.p(d_name))}"

    return ev.memo(f"limit:{s_name},{d_name}", text)


class ConfirmationRule(Rule):
    """A value in the severe range asks for a re-measure: the episode waits (pending) and opens
    if the repeat within the window is itself in the severe range, or if no repeat comes. A
    repeat that is not severe does not confirm it (the pending episode closes as not
    confirmed). Readings timed on arrival (device clock unset/reset) never confirm one another:
    their measurement times are unknown, so two of them may be days apart."""

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

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        # a finding needs a severe value; anything else only speaks to an active episode
        inclusive = bool(params.get("inclusive") and params["inclusive"].value)
        return ~_severe_v(cols, params["systolic"].value, params["diastolic"].value, inclusive)

    def check(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or ("systolic" not in pt.values and "diastolic" not in pt.values):
            return None
        window = timedelta(minutes=ev.p("confirm_minutes"))
        crisis = (ev.p("systolic"), ev.p("diastolic"))
        inclusive = bool(ev.params.get("inclusive") and ev.p("inclusive"))
        band = (ev.p("clear_systolic"), ev.p("clear_diastolic"))
        sys_value = pt.values.get("systolic", 0.0)
        severe = _severe(pt.values, *crisis, inclusive)
        still_high = self._beyond(pt.values, *band)
        if severe:
            limit = _limit(ev)
            src = ev.source("systolic", "diastolic")
            # the first severe reading of the window (not this one) confirms it
            first = (
                ev.history.first(
                    "blood_pressure",
                    pt.time - window,
                    pt.time,
                    lambda p: (
                        p.reading_id != pt.reading_id and _severe(p.values, *crisis, inclusive)
                    ),
                )
                if pt.time_trusted
                else None
            )
            if first is not None:
                text = (
                    f"Blood pressure {_bp(first.values)} confirmed by a repeat of "
                    f"{_bp(pt.values)} within {_n(window.total_seconds() / 60)} min; "
                    f"{src} {limit} mmHg"
                )
                return self.finding(
                    ev,
                    Severity.CRITICAL,
                    "systolic",
                    sys_value,
                    text,
                    (first.reading_id, pt.reading_id),
                )
            # a crisis is never ignored for its timestamp: an arrival-timed reading still asks
            # for its re-measure (and opens when none comes)
            text = (
                f"Blood pressure {_bp(pt.values)}, in the severe range ({limit} mmHg); re-measure "
                f"requested within {_n(window.total_seconds() / 60)} min; {src}"
            )
            if not pt.time_trusted:
                text += " (device clock unset or reset: timed on arrival)"
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
        # not severe: never confirms a pending crisis; back below the band clears an open one
        return Verdict(self.family, clear=not still_high, disconfirm=True)


OCCASION = timedelta(hours=4)  # high BP: readings closer than this are one occasion


class CountRule(Rule):
    """N-of-M persistence: of the last M usable readings within the window, at least N (weighted;
    a cuff-error reading counts ``suspect_weight``) are beyond the level-1 threshold; severity
    rises to level 2 when N of them are beyond level 2. Clears when the last two readings are
    back inside the clear band. High side: systolic and/or diastolic at or above the level."""

    kind = "n_of_m"
    second = "diastolic"  # the second parameter of each level, next to systolic

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
        self._names = {  # each level's two parameters
            level: (f"{level}_systolic", f"{level}_{self.second}")
            for level in ("level1", "level2", "clear")
        }

    def _beyond(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        return (s is not None and s >= s_lim) or (d is not None and d >= d_lim)

    def _inside(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        return (s is None or s < s_lim) and (d is None or d < d_lim)

    def _limit_text(self, limit: tuple[float, float]) -> str:
        return f"at or above {_n(limit[0])}/{_n(limit[1])} mmHg"

    def _count(self, hits: list[Point], suspect_weight: float) -> float:
        """The weighted number of hits. High BP counts occasions: hits less than ``OCCASION``
        after the first of a group are one (ACOG PB 222: two occasions at least 4 h apart;
        AHA/ACC home BP: the readings of a session are averaged, one measurement)."""
        if self.direction != "high":
            return sum(_weight(p, suspect_weight) for p in hits)
        total, start, best = 0.0, None, 0.0
        for p in sorted(hits, key=lambda p: p.time):
            if start is None or p.time - start >= OCCASION:
                total += best
                start, best = p.time, 0.0
            best = max(best, _weight(p, suspect_weight))
        return total + best

    def _level(self, params: Mapping[str, ThresholdValue], level: str) -> tuple[float, float]:
        s_name, d_name = self._names[level]
        return (params[s_name].value, params[d_name].value)

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return active or self._beyond(values, *self._level(params, "level1"))

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def _beyond_v(self, cols: ReadingColumns, s_lim: float, d_lim: float) -> Mask:
        """:meth:`_beyond` over columns."""
        s, d = cols.values["systolic"], cols.values["diastolic"]
        return (s >= s_lim) | (d >= d_lim)

    def reads_last(self, params: Mapping[str, ThresholdValue]) -> int | None:
        return int(params["m"].value)  # history.last(..., m, ...): nothing else

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        # with its family inactive, a reading not beyond level 1 returns before any history
        return ~self._beyond_v(cols, *self._level(params, "level1"))

    def check(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None:
            return None
        if "systolic" not in pt.values and "diastolic" not in pt.values:
            return None
        l1 = self._level(ev.params, "level1")
        if self.family not in ev.active and not self._beyond(pt.values, *l1):
            return None  # nothing to open and nothing to clear: no history needed
        n, m = ev.p("n"), int(ev.p("m"))
        sw = ev.p("suspect_weight")
        start = pt.time - timedelta(hours=ev.p("window_hours"))
        # a cuff whose clock was reset still measures: its readings count by arrival time (as
        # clock-reset weights do), so hypotension over two days is not lost to a clock
        recent = ev.history.last("blood_pressure", pt.time, m, start, trusted_only=False)
        l2 = self._level(ev.params, "level2")
        if self._beyond(pt.values, *l1):
            hits1 = [p for p in recent if self._beyond(p.values, *l1)]
            n2 = ev.p("level2_n") if "level2_n" in ev.params else n
            hits2 = [p for p in recent if self._beyond(p.values, *l2)]
            w2 = self._count(hits2, sw)
            level2 = w2 + 1e-9 >= n2
            w1 = self._count(hits1, sw)
            if level2 or w1 + 1e-9 >= n:
                limit = l2 if level2 else l1
                hits = hits2 if level2 else hits1
                lv = "level2" if level2 else "level1"
                src = ev.source(f"{lv}_systolic", f"{lv}_{self.second}")
                single = w1 + 1e-9 < n and w2 + 1e-9 < n
                confirm_by = None
                if single:
                    # one reading at level 2 (hypotension <80 systolic): ask for a re-measure,
                    # as for a crisis; it opens if the repeat is still low or none comes
                    window = timedelta(minutes=15)
                    confirm_by = pt.time + window
                    text = (
                        f"Blood pressure {_bp(pt.values)} {self._limit_text(limit)}; "
                        f"re-measure requested within 15 min; {src}"
                    )
                else:
                    span = _span(pt.time - recent[0].time) if len(recent) > 1 else "one reading"
                    text = (
                        f"{len(hits)} of the last {len(recent)} blood pressures in {span} "
                        f"{self._limit_text(limit)} (latest {_bp(pt.values)}); " + src
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
        clear_band = self._level(ev.params, "clear")
        clear = len(last_two) == 2 and all(self._inside(p.values, *clear_band) for p in last_two)
        return Verdict(self.family, clear=clear, disconfirm=not self._beyond(pt.values, *l1))


def _map(values: Mapping[str, float]) -> float | None:
    """Mean arterial pressure: from the pair (diastolic + a third of the pulse pressure) when
    both are known, else the device's own."""
    s, d = values.get("systolic"), values.get("diastolic")
    if s is not None and d is not None:
        return (s + 2 * d) / 3
    return values.get("mean_arterial")


class LowBpRule(CountRule):
    """Hypotension N-of-M from systolic or mean arterial pressure — never from a low diastolic
    alone (a wide pulse pressure, e.g. 150/55, is not hypotension). A pair in the hypertensive
    range (systolic ≥140 or diastolic ≥90) is never low, so one reading never opens a crisis and
    a hypotension episode together."""

    second = "map"

    def _beyond(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, d = values.get("systolic"), values.get("diastolic")
        if (s is not None and s >= 140) or (d is not None and d >= 90):
            return False
        mean = _map(values)
        return (s is not None and s < s_lim) or (mean is not None and mean < d_lim)

    def _beyond_v(self, cols: ReadingColumns, s_lim: float, d_lim: float) -> Mask:
        s, d = cols.values["systolic"], cols.values["diastolic"]
        hypertensive = (s >= 140) | (d >= 90)
        pair = ~np.isnan(s) & ~np.isnan(d)
        mean = np.where(pair, (s + 2 * d) / 3, cols.values["mean_arterial"])
        return ~hypertensive & ((s < s_lim) | (mean < d_lim))

    def _inside(self, values: Mapping[str, float], s_lim: float, d_lim: float) -> bool:
        s, mean = values.get("systolic"), _map(values)
        return (s is None or s >= s_lim) and (mean is None or mean >= d_lim)

    def _limit_text(self, limit: tuple[float, float]) -> str:
        return f"below systolic {_n(limit[0])} or mean arterial pressure {_n(limit[1])} mmHg"


class RollingMeanRule(Rule):
    """The weighted mean of home blood pressure over the window, once it holds at least
    ``min_n`` (weighted) readings, at or above the program's target. Periodic: evaluated by
    the scheduler (and the replay clock) every ``PERIOD``, not on each reading — a weekly mean
    is a review metric, and this keeps a normal reading free of history queries."""

    kind = "rolling_mean"
    periodic = True

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["window_days"].value)

    def check(self, ev: Eval) -> Verdict | None:
        days = ev.p("window_days")
        pts = ev.history.window("blood_pressure", ev.at - timedelta(days=days), ev.at)
        sw = ev.p("suspect_weight")
        pairs = [
            (p, _weight(p, sw)) for p in pts if "systolic" in p.values and "diastolic" in p.values
        ]
        n_eff = sum(w for _, w in pairs)
        if not pairs or n_eff + 1e-9 < ev.p("min_n"):
            return None  # too few readings to judge either way
        days_seen = {p.time.astimezone(ev.tz).date() for p, _ in pairs}
        if len(days_seen) < ev.p("min_days"):
            return None  # the home-BP protocol asks for readings on several days
        ws = np.array([w for _, w in pairs])
        ms = float(np.average([p.values["systolic"] for p, _ in pairs], weights=ws))
        md = float(np.average([p.values["diastolic"] for p, _ in pairs], weights=ws))
        ls, ld = ev.p("systolic"), ev.p("diastolic")
        if ms >= ls or md >= ld:
            text = (
                f"{_n(days)}-day home blood pressure mean {ms:.0f}/{md:.0f} mmHg from "
                f"{len(pairs)} readings on {len(days_seen)} days, at or above "
                f"{_n(ls)}/{_n(ld)}; " + ev.source("systolic", "diastolic")
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


# A single jump waits for a re-weigh or the next morning's weight (daily weigh-ins drift by an
# hour or two) before it reaches the care team; none coming by then opens it.
REWEIGH_WINDOW = timedelta(hours=28)
REWEIGH_TEXT = "one weigh-in so far: re-weigh requested (or tomorrow's weight)"


def _day_kg(ev: Eval) -> float:
    """A day-to-day jump that makes a weigh-in an outlier candidate: the program's 1-day gain
    (HFSA: more than 2 lb in a day)."""
    v = ev.thresholds.values.get("weight_gain_1d", {}).get("kg")
    return v.value if v is not None else 2 * LB


def _lowest(points: list[Point]) -> Point:
    return min(points, key=lambda p: (p.values["body_weight"], p.time))


class ChangeRule(Rule):
    """Weight gain between daily weigh-ins: each calendar day (patient's time zone) counts with
    its lowest usable weight (the morning weight, not the one in a coat), readings timed on
    arrival (device clock reset) included by their arrival time.

    ``window_hours`` 24: today against the last earlier weigh-in day within ``lookback_days``
    (a missed day is covered); longer windows: today against the lowest day in the window. A
    day lower than both its neighbours by more than a day's gain is a low outlier and never a
    reference. Above the limit with only one weigh-in showing it after a jump (a single
    outlier), the gain is moderate with a re-weigh requested; a second weigh-in (a re-weigh or
    the next day) beyond the limit makes it the rule's severity."""

    kind = "change"

    def __init__(
        self,
        rule_id: str,
        family: str,
        description: str,
        severity: Severity,
        *,
        strict: bool = True,
    ):
        super().__init__(
            rule_id, family, frozenset({"body_weight", "body_composition"}), description
        )
        self.severity = severity
        self.strict = strict  # "more than" (HFSA) or "at least" (ESC: ≥2 kg in 3 days)

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return "body_weight" in values

    def _days(self, params: Mapping[str, ThresholdValue]) -> int:
        hours = params["window_hours"].value
        if hours <= 24 and "lookback_days" in params:
            return int(params["lookback_days"].value)
        return max(1, round(hours / 24))

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        # the window's days, plus the day before it (is the window's first day a low outlier?)
        return timedelta(days=self._days(params) + 2)

    def _over(self, gain: float, limit: float) -> bool:
        return gain > limit + 1e-9 if self.strict else gain + 1e-9 >= limit

    def check(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or "body_weight" not in pt.values:
            return None
        days = self._days(ev.params)
        today = pt.time.astimezone(ev.tz).date()
        first = today - timedelta(days=days)
        start = datetime.combine(first - timedelta(days=1), time(0), ev.tz)
        by_day: dict[date, list[Point]] = {}
        for p in _weights(ev, start, pt.time, trusted_only=False):
            if p.reading_id == pt.reading_id or not p.suspect:
                by_day.setdefault(p.time.astimezone(ev.tz).date(), []).append(p)
        todays = by_day.pop(today, [])
        if all(p.reading_id != pt.reading_id for p in todays):
            todays.append(pt)
        now_pt = _lowest(todays)
        daily = [_lowest(v) for _, v in sorted(by_day.items())]
        jump = _day_kg(ev)

        def kg(p: Point) -> float:
            return p.values["body_weight"]

        clean = [
            d
            for i, d in enumerate(daily)
            if not (
                i > 0
                and kg(d) < kg(daily[i - 1]) - jump
                and kg(d) < kg(daily[i + 1] if i + 1 < len(daily) else now_pt) - jump
            )
        ]
        usable = [d for d in clean if d.time.astimezone(ev.tz).date() >= first]
        if not usable:
            return None
        hours = ev.p("window_hours")
        ref = usable[-1] if hours <= 24 else _lowest(usable)
        if (
            hours <= 24
            and len(clean) >= 2
            and clean[-2].time.astimezone(ev.tz).date() >= first - timedelta(days=1)
            and kg(clean[-1]) - kg(clean[-2]) > jump + 1e-9
            and kg(now_pt) - kg(clean[-2]) > jump + 1e-9
        ):
            ref = clean[-2]  # the last weigh-in jumped and this one stayed up: the day before
        now_kg = kg(now_pt)
        delta = now_kg - kg(ref)
        limit = ev.p("kg")
        if not self._over(delta, limit):
            # back down after a single jump: the jump was not confirmed (coat, shoes)
            return Verdict(
                self.family, clear=delta < limit - ev.p("clear_margin_kg"), disconfirm=True
            )
        n_days = (today - ref.time.astimezone(ev.tz).date()).days
        per = "1 d" if hours <= 24 else f"{_n(hours / 24)} d"
        text = (
            f"Weight up {_kg(delta)} in {_span(now_pt.time - ref.time)}, from {kg(ref):.1f} to "
            f"{now_kg:.1f} kg; {ev.source('kg')} {limit:.1f} kg/{per}"
        )
        if hours <= 24 and n_days > 1:
            text += f" (no weigh-in on the {n_days - 1} day(s) between)"
        # a single outlier jump (coat, shoes) is not yet a finding for the care team: the
        # patient re-weighs (or weighs tomorrow); it opens if that weight is still up, or if none
        # comes within REWEIGH_WINDOW
        beyond = [p for p in todays if self._over(kg(p) - kg(ref), limit)]
        supported = len(beyond) >= 2 and len(beyond) == len(todays)
        last = usable[-1]
        if last is not ref and self._over(kg(last) - kg(ref), limit):
            supported = True  # yesterday (or the last weigh-in) was already up
        if len(clean) >= 2:
            before = kg(clean[-2])
            if kg(clean[-1]) - before > jump + 1e-9 and now_kg - before > jump + 1e-9:
                supported = True  # the last weigh-in jumped, and this one stayed up
        severity = self.severity
        confirm_by = None
        if not supported and now_kg - kg(last) > jump + 1e-9:
            severity = min(severity, Severity.MODERATE)
            confirm_by = now_pt.time + REWEIGH_WINDOW
            text += f"; {REWEIGH_TEXT}"
        return self.finding(
            ev,
            severity,
            "body_weight",
            delta,
            text,
            (ref.reading_id, now_pt.reading_id),
            confirm_by=confirm_by,
        )


def _weights(
    ev: Eval,
    start: datetime,
    end: datetime,
    *,
    include_end: bool = True,
    trusted_only: bool = True,
) -> list[Point]:
    """The body weights in ``[start, end]`` from scales and body-composition scales alike."""
    return [
        p
        for t in ("body_weight", "body_composition")
        for p in ev.history.window(
            t, start, end, include_end=include_end, trusted_only=trusted_only
        )
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

    def check(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or not pt.time_trusted or "body_weight" not in pt.values:
            return None
        days = ev.p("window_days")
        pts = _weights(ev, pt.time - timedelta(days=days), pt.time)
        pts.sort(key=lambda p: p.time)
        jump = _day_kg(ev)

        def kg(p: Point) -> float:
            return p.values["body_weight"]

        # a spike above both neighbours (coat, shoes) is no trend; nor is a last jump until a
        # re-weigh or tomorrow's weight shows it stayed
        pts = [
            p
            for i, p in enumerate(pts)
            if not (
                0 < i < len(pts) - 1 and min(kg(p) - kg(pts[i - 1]), kg(p) - kg(pts[i + 1])) > jump
            )
        ]
        if len(pts) < ev.p("min_n"):
            return None
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
            confirm_by = None
            if kg(pts[-1]) - kg(pts[-2]) > jump + 1e-9:
                confirm_by = pt.time + REWEIGH_WINDOW
                text += f"; {REWEIGH_TEXT}"
            return self.finding(
                ev,
                Severity.MODERATE,
                "body_weight",
                slope,
                text,
                tuple(p.reading_id for p in pts),
                confirm_by=confirm_by,
            )
        return Verdict(self.family, clear=slope < ev.p("clear_kg_per_day"), disconfirm=True)


class ThresholdRule(Rule):
    """Single-reading glucose threshold: below level 1 → moderate, below level 2 → high."""

    kind = "threshold"

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        return ~(cols.values["glucose"] < params["level1"].value)

    def check(self, ev: Eval) -> Verdict | None:
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


class _GlucoseAboveRule(Rule):
    """Glucose above ``mg_dl`` on trusted-time readings, judged over a window of history by
    :meth:`judge`; back at or below ``clear`` clears."""

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        return values.get("glucose", 0.0) > params["mg_dl"].value

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        return ~(cols.values["glucose"] > params["mg_dl"].value)

    def check(self, ev: Eval) -> Verdict | None:
        pt = ev.point
        if pt is None or "glucose" not in pt.values:
            return None
        v, limit = pt.values["glucose"], ev.p("mg_dl")
        if v > limit and pt.time_trusted:
            since = pt.time - self.lookback(ev.params)
            above = [
                p
                for p in ev.history.window("glucose", since, pt.time)
                if p.values.get("glucose", 0.0) > limit
            ]
            return self.judge(ev, v, limit, above)
        return Verdict(self.family, clear=v <= ev.p("clear"))

    def judge(  # pragma: no cover - abstract
        self, ev: Eval, value: float, limit: float, above: Sequence[Point]
    ) -> Verdict | None:
        """What this rule makes of the high values in its window (``above``, oldest first)."""
        raise NotImplementedError


class RepeatRule(_GlucoseAboveRule):
    """Glucose above a level ``count`` times within a window (ADA: >250 mg/dL twice in 24 h)."""

    kind = "repeat"

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def judge(self, ev: Eval, value: float, limit: float, above: Sequence[Point]) -> Verdict | None:
        assert ev.point is not None
        if sum(0.5 if p.suspect else 1.0 for p in above) + 1e-9 < ev.p("count"):
            return None
        text = (
            f"Glucose above {_n(limit)} mg/dL {len(above)} times in "
            f"{_span(ev.point.time - above[0].time)} (latest {_glucose(value)}); "
            f"{ev.source('mg_dl')} >{_n(limit)} mg/dL x{_n(ev.p('count'))} in "
            f"{_n(ev.p('window_hours'))} h"
        )
        return self.finding(
            ev, Severity.MODERATE, "glucose", value, text, tuple(p.reading_id for p in above)
        )


class ConsecutiveDaysRule(_GlucoseAboveRule):
    """Glucose above a level on ``days`` consecutive calendar days (site time zone)."""

    kind = "consecutive_days"

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["days"].value + 1)

    def judge(self, ev: Eval, value: float, limit: float, above: Sequence[Point]) -> Verdict | None:
        assert ev.point is not None
        days = int(ev.p("days"))
        today = ev.point.time.astimezone(ev.tz).date()
        seen = {p.time.astimezone(ev.tz).date() for p in above}
        if not all(today - timedelta(days=k) in seen for k in range(days)):
            return None
        text = (
            f"Glucose above {_n(limit)} mg/dL on {days} consecutive days "
            f"(latest {_glucose(value)}); {ev.source('mg_dl')} >{_n(limit)} mg/dL on "
            f"{days} days"
        )
        return self.finding(
            ev, Severity.HIGH, "glucose", value, text, tuple(p.reading_id for p in above)
        )


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
        value_flags: frozenset[str] = frozenset(),
    ):
        super().__init__(rule_id, family, types, description)
        self.flags = flags
        self.value_flags = value_flags  # e.g. glucose_positive_infinity
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

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        names = self.flags | self.value_flags
        mask = np.array([not names.intersection(f) for f in cols.flags], dtype=np.bool_)
        for f in self.value_flags:  # an infinite number says the same as HI/LO
            code = f.removesuffix("_positive_infinity").removesuffix("_negative_infinity")
            col = cols.raw.get(code)
            if col is None:
                return None  # a value flag this prefilter does not hold as a column
            mask &= ~np.isinf(col)
        return mask

    def _flagged(self, r: StoredReading) -> bool:
        if self.flags.intersection(r.flags):
            return True
        # a value flag (IEEE 11073 +INF/-INF) or an infinite number says the same as HI/LO
        for f in self.value_flags:
            if f in r.flags:
                return True
            code = f.removesuffix("_positive_infinity").removesuffix("_negative_infinity")
            v = r.values.get(code)
            if v is not None and math.isinf(v) and (v > 0) == f.endswith("_positive_infinity"):
                return True
        return False

    def check(self, ev: Eval) -> Verdict | None:
        r = ev.reading
        if r is None or "control_solution" in r.flags:
            return None
        if self._flagged(r):
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


class SymptomRule(Rule):
    """Symptoms reported by the patient (a ``symptom`` reading whose values name them) with the
    blood pressure around them: a symptom with a BP at or above the program's level (maternal:
    ≥140/90) within the window, before or after it, is critical, as are chest pain and
    shortness of breath on their own; any other symptom alone is high (a call, a BP now)."""

    kind = "symptom"

    @staticmethod
    def _source(ev: Eval) -> str:
        """The thresholds' source and limit (built only for a finding: most readings have
        none)."""
        return f"{ev.source('systolic', 'diastolic')} {_limit(ev)} mmHg"

    def quiet(self, cols: ReadingColumns, params: Mapping[str, ThresholdValue]) -> Mask | None:
        if cols.type == SYMPTOM_TYPE:
            return None  # a report names symptoms: always through the engine
        lim = (params["systolic"].value, params["diastolic"].value, bool(params["inclusive"].value))
        return ~_severe_v(cols, *lim)

    def wants_history(
        self,
        values: Mapping[str, float],
        flags: tuple[str, ...],
        params: Mapping[str, ThresholdValue],
        active: bool,
    ) -> bool:
        if any(k in SYMPTOMS for k in values):
            return True
        return _severe(
            values,
            params["systolic"].value,
            params["diastolic"].value,
            bool(params["inclusive"].value),
        )

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(hours=params["window_hours"].value)

    def check(self, ev: Eval) -> Verdict | None:
        r, pt = ev.reading, ev.point
        if r is None or pt is None:
            return None
        window = timedelta(hours=ev.p("window_hours"))
        lim = (ev.p("systolic"), ev.p("diastolic"), bool(ev.p("inclusive")))
        if r.type == SYMPTOM_TYPE:
            named = [k for k, v in pt.values.items() if k in SYMPTOMS and v]
            if not named:
                return None
            words = ", ".join(SYMPTOMS[k] for k in named)
            high = [
                p
                for p in ev.history.window(
                    "blood_pressure", pt.time - window, pt.time, trusted_only=False
                )
                if _severe(p.values, *lim)
            ]
            if high:
                worst = max(high, key=lambda p: p.values.get("systolic", 0.0))
                text = (
                    f"Symptoms reported ({words}) with blood pressure {_bp(worst.values)} in the "
                    f"last {_span(window)}; {self._source(ev)}"
                )
                evidence = (worst.reading_id, pt.reading_id)
                return self.finding(ev, Severity.CRITICAL, "symptom", len(named), text, evidence)
            emergency = EMERGENCY_SYMPTOMS.intersection(named)
            text = f"Symptoms reported ({words})" + (
                ": emergency warning sign (AWHONN POST-BIRTH: call 911)"
                if emergency
                else f"; no blood pressure at or above {_limit(ev)} in the last "
                f"{_span(window)}: call the patient and ask for a blood pressure now"
            )
            severity = Severity.CRITICAL if emergency else Severity.HIGH
            return self.finding(ev, severity, "symptom", len(named), text, (pt.reading_id,))
        if not _severe(pt.values, *lim):
            return None
        reported = [
            p
            for p in ev.history.window(SYMPTOM_TYPE, pt.time - window, pt.time, trusted_only=False)
            if any(k in SYMPTOMS and v for k, v in p.values.items())
        ]
        if not reported and self.family not in ev.active:
            return None
        names = sorted({k for p in reported for k, v in p.values.items() if k in SYMPTOMS and v})
        words = ", ".join(SYMPTOMS[k] for k in names) or "see the open symptom report"
        text = (
            f"Blood pressure {_bp(pt.values)} after symptoms were reported ({words}); "
            + self._source(ev)
        )
        return self.finding(
            ev,
            Severity.CRITICAL,
            "symptom",
            float(len(names)),
            text,
            (*(p.reading_id for p in reported), pt.reading_id),
        )


class MissingTypeRule(Rule):
    """Missing data per required reading type: no reading of the type (by arrival time too) for
    ``days`` while the patient may well send others — a heart-failure patient who stops weighing
    but keeps sending blood pressures. Periodic (scheduler, replay clock)."""

    kind = "missing_type"
    periodic = True

    def __init__(
        self, rule_id: str, family: str, types: frozenset[str], description: str, what: str
    ):
        super().__init__(rule_id, family, types, description)
        self.what = what

    def lookback(self, params: Mapping[str, ThresholdValue]) -> timedelta:
        return timedelta(days=params["days"].value)

    def check(self, ev: Eval) -> Verdict | None:
        days = ev.p("days")
        start = ev.at - timedelta(days=days)
        seen = [
            p
            for t in sorted(self.types)
            for p in ev.history.window(t, start, ev.at, trusted_only=False)
        ]
        if seen:
            return Verdict(self.family, clear=True)
        text = (
            f"No {self.what} for {_n(days)} days (the program needs it daily); "
            f"{ev.source('days')} {_n(days)} days"
        )
        return self.finding(ev, Severity.LOW, self.id, days, text, ())


class PostpartumEndRule(Rule):
    """The end of the postpartum monitoring window (delivery date + ``weeks``): a notice to the
    care team, once, on the first periodic pass after it (ACOG Committee Opinion 736: the
    postpartum period extends to 12 weeks; a comprehensive visit and hand-over by then)."""

    kind = "notice"
    periodic = True
    once = timedelta(hours=6)  # one periodic slot

    def check(self, ev: Eval) -> Verdict | None:
        end, delivered = ev.thresholds.postpartum_end, ev.thresholds.delivery_date
        if end is None or delivered is None or not end <= ev.at < end + self.once:
            return None
        weeks = (end.date() - delivered).days / 7
        text = (
            f"Postpartum monitoring window ended ({_n(weeks)} weeks after delivery on "
            f"{delivered.isoformat()}): the postpartum thresholds no longer apply; review the "
            "care plan and hand over to ongoing care"
        )
        return self.finding(ev, Severity.INFO, "postpartum_end", weeks, text, ())


class TimedRule(Rule):
    """A rule evaluated by time rather than by a reading (the scheduler and the replay clock):
    missing data, gateway offline, battery low."""

    kind = "timed"

    def check(self, ev: Eval) -> Verdict | None:
        return None


_BP = frozenset({"blood_pressure"})
_GLU = frozenset({"glucose"})
_WEIGHT = frozenset({"body_weight", "body_composition"})
_ANY = frozenset({"blood_pressure", "glucose", "body_weight", "body_composition"})

RULES: Mapping[str, Rule] = {
    r.id: r
    for r in (
        ConfirmationRule(
            "bp_crisis",
            "bp_crisis",
            _BP,
            "Severe hypertension: systolic >180 and/or diastolic >120 mmHg (2025 AHA/ACC High "
            "Blood Pressure Guideline: severe hypertension, >180 and/or >120, confirmed by a "
            "repeat), confirmed by a re-measure within 15 min that is itself severe, or opened "
            "when no re-measure comes; maternal_postpartum: systolic ≥160 and/or diastolic ≥110 "
            "(ACOG Committee Opinion 767 and Practice Bulletin 222: severe-range blood pressure, "
            "confirmed within 15 min, treated within 30-60 min). Readings timed on arrival never "
            "confirm one another.",
        ),
        CountRule(
            "bp_high",
            "bp_high",
            "Persistent high home blood pressure, graded on the home scale: N of the last M "
            "readings in the window at or above level 1, home 145/90 (2025 AHA/ACC "
            "corresponding values: home 145/90 ≈ office 160/100; maternal_postpartum ≥140/90 "
            "twice, ACOG Practice Bulletin 222) → moderate; level 2, home 155/95 (≈ office "
            "grade 3, 180/110, on the same table's slope; maternal ≥150/100, ACOG postpartum "
            "treatment threshold) → high. Clears below home 135/85 (≈ office 140/90).",
            "high",
            (Severity.MODERATE, Severity.HIGH),
        ),
        RollingMeanRule(
            "bp_mean_7d",
            "bp_mean",
            _BP,
            "Uncontrolled hypertension: 7-day home BP mean ≥135/85 mmHg (2025 AHA/ACC: home "
            "135/85 corresponds to office 140/90; diabetes program ≥130/80, ADA Standards of "
            "Care 2026 target <130/80) from at least 12 readings on at least 3 days (AHA/ACC "
            "home BP monitoring protocol: readings on several days, ideally 7).",
        ),
        LowBpRule(
            "bp_low",
            "bp_low",
            "Hypotension from systolic or mean arterial pressure, never from a low diastolic "
            "alone: 2 of the last 3 readings in 48 h with systolic <90 mmHg or MAP <65 mmHg "
            "(AHA: low blood pressure below 90 systolic; MAP 65 mmHg, Surviving Sepsis "
            "Campaign perfusion target) → moderate, as is a single systolic <80 (or MAP <55) "
            "confirmed by a re-measure within 15 min (or none coming); 2 of 3 at that level → "
            "high.",
            "low",
            (Severity.MODERATE, Severity.HIGH),
        ),
        ChangeRule(
            "weight_gain_1d",
            "weight_gain",
            "Heart-failure fluid gain: today's weight more than 2 lb (0.9 kg) above the last "
            "daily weight (calendar days in the patient's time zone; after one missed day, the "
            "weigh-in two days ago; longer gaps are the 3- and 7-day rules') (HFSA/AHA "
            "heart-failure self-care: report a gain of more than 2-3 lb in a day).",
            Severity.MODERATE,
        ),
        ChangeRule(
            "weight_gain_3d",
            "weight_gain",
            "Heart-failure fluid gain: today's weight at least 2 kg above the lowest daily "
            "weight of the last 3 days (ESC heart-failure self-care: an unexpected gain of more "
            "than 2 kg in 3 days) → high after a second weigh-in confirms a single jump.",
            Severity.HIGH,
            strict=False,
        ),
        ChangeRule(
            "weight_gain_7d",
            "weight_gain",
            "Heart-failure fluid gain: today's weight more than 5 lb (2.3 kg) above the lowest "
            "daily weight of the last 7 days (HFSA/AHA heart-failure self-care: more than 5 lb "
            "in a week) → high after a second weigh-in confirms a single jump.",
            Severity.HIGH,
        ),
        SlopeRule(
            "weight_trend",
            "weight_gain",
            _WEIGHT,
            "Gradual weight gain: least-squares slope ≥0.25 kg/day over 7 days from ≥5 "
            "readings spanning ≥4 days (trend before HF hospitalisation: Chaudhry et al., "
            "Circulation 2007;116:1549).",
        ),
        ThresholdRule(
            "glucose_low",
            "glucose_low",
            _GLU,
            "Hypoglycemia: glucose <70 mg/dL (ADA Standards of Care 2026, section 6: level 1) "
            "→ moderate; <54 mg/dL (level 2, clinically significant) → high.",
        ),
        FlagRule(
            "glucose_meter_lo",
            "glucose_low",
            _GLU,
            "Meter reports LO (below its measuring range, typically <20 mg/dL) or a -INF value: "
            "treated as level 2 hypoglycemia without a number (ADA Standards of Care 2026, "
            "section 6).",
            frozenset({"result_too_low"}),
            Severity.HIGH,
            "Meter reported LO (below its measuring range): possible severe hypoglycemia",
            clears=False,
            value_flags=frozenset({"glucose_negative_infinity"}),
        ),
        FlagRule(
            "glucose_meter_hi",
            "glucose_high",
            _GLU,
            "Meter reports HI (above its measuring range, typically >600 mg/dL) or a +INF value "
            "without the HI bit: possible hyperglycemic crisis (ADA Standards of Care 2026, "
            "sick-day guidance).",
            frozenset({"result_too_high"}),
            Severity.HIGH,
            "Meter reported HI (above its measuring range): possible severe hyperglycemia",
            clears=False,
            value_flags=frozenset({"glucose_positive_infinity"}),
        ),
        RepeatRule(
            "glucose_high_24h",
            "glucose_high",
            _GLU,
            "Hyperglycemia: glucose >250 mg/dL twice within 24 h (ADA Standards of Care 2026, "
            "sick-day rules: call the care team).",
        ),
        ConsecutiveDaysRule(
            "glucose_high_2d",
            "glucose_high",
            _GLU,
            "Hyperglycemia: glucose >300 mg/dL on 2 consecutive days (ADA Standards of Care "
            "2026: persistent hyperglycemia above 300 mg/dL needs a call).",
        ),
        SymptomRule(
            "symptoms",
            "symptom",
            frozenset({SYMPTOM_TYPE, "blood_pressure"}),
            "Reported symptoms (severe headache, vision change, right-upper-quadrant pain, "
            "shortness of breath, chest pain): with a blood pressure ≥140/90 within 24 h in "
            "maternal_postpartum (ACOG Practice Bulletin 222: preeclampsia with severe features) "
            "or a severe-range one elsewhere (2025 AHA/ACC: hypertensive emergency), critical; "
            "chest pain or shortness of breath alone, critical (AWHONN POST-BIRTH warning signs: "
            "call 911); any other symptom alone, high.",
        ),
        MissingTypeRule(
            "missing_weight",
            "missing_data",
            _WEIGHT,
            "Missing weights: no body weight for 3 days in heart failure, whatever else arrives "
            "(HFSA/AHA heart-failure self-care: weigh every morning; after a third missed "
            "weigh-in even the 3-day gain rule — ESC: more than 2 kg in 3 days — has no "
            "reference left). One missing-data item with no readings at all.",
            "body weight",
        ),
        PostpartumEndRule(
            "postpartum_end",
            "program_notice",
            _BP,
            "End of the postpartum monitoring window: delivery date + 6 weeks by default, "
            "configurable up to 12 (ACOG Committee Opinion 736: the postpartum period extends "
            "to 12 weeks); a notice to the care team, after which the postpartum thresholds "
            "give way to the patient's other programs.",
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
            "weights, HFSA), diabetes 3, maternal_postpartum 2 (postpartum BP checks, ACOG "
            "Committee Opinion 736 and Practice Bulletin 222), general 3 (daily readings "
            "there too); well inside the CMS RPM 16-of-30-day data requirement.",
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
