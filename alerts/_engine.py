"""Episodes and the evaluation loop shared by the live path, the scheduler and the replay.

One active (not resolved) episode per (patient, family). Findings coalesce into it (count,
first/last/worst value, evidence), raise its severity, and confirm a pending one; clearing needs
the value back past the rule's hysteresis band for the family's hold time. Pure: the caller
passes the wall clock ``now`` and persists what changed (``Book.changed`` / ``Book.events``).

Late data: a finding whose clinical time is more than ``LATE_AFTER`` behind ``now`` is recorded
(count, worst value, evidence, severity) but never pages: an episode opened from late evidence
only is marked ``late`` and its priority is held at routine review (4) or lower; a fresh finding
later lifts it to its normal priority.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from alerts._history import History
from alerts._model import Severity, StoredReading, assess
from alerts._programs import ThresholdSet
from alerts._rules import FAMILIES, RULES, Eval, Finding, Verdict

__all__ = [
    "ESCALATION_LEVELS",
    "LATE_AFTER",
    "OUTCOMES",
    "PERIOD",
    "SLA",
    "STATES",
    "Book",
    "Episode",
    "Event",
    "Facts",
    "PatientContext",
    "advance",
    "evaluate_patient",
    "evaluate_periodic",
    "history_needs",
    "periodic_rules",
    "priority_for",
]

LATE_AFTER = timedelta(hours=6)
STATES = ("pending", "open", "acknowledged", "resolved")
ESCALATION_LEVELS = ("care_manager", "supervisor", "on_call_clinician")
# priority (1 = most urgent) -> time to acknowledge
SLA: Mapping[int, timedelta] = {
    1: timedelta(minutes=30),
    2: timedelta(hours=4),
    3: timedelta(hours=24),
    4: timedelta(hours=72),
    5: timedelta(days=7),
}
LATE_PRIORITY = 4
OUTCOMES = frozenset(
    {
        "contacted_no_change",
        "medication_changed",
        "appointment_scheduled",
        "referred_to_ed",
        "clinician_notified",
        "education_provided",
        "device_issue",
        "measurement_error",
        "false_positive",
        "patient_unreachable",
        "duplicate",
        "auto_cleared",
        "not_confirmed",
        "other",
    }
)
_BASE_PRIORITY = {
    Severity.CRITICAL: 1,
    Severity.HIGH: 2,
    Severity.MODERATE: 3,
    Severity.LOW: 4,
    Severity.INFO: 5,
}
_TIER_SHIFT = {1: -1, 2: 0, 3: 1}
_NS = uuid.UUID("6f1d9a52-3c1e-4d8e-9a57-0c6a1f2b7e11")
_MAX_EVIDENCE = 200


def priority_for(severity: Severity, risk_tier: int, late: bool = False) -> int:
    """1 (most urgent) .. 5: from severity, shifted one step by the patient's risk tier
    (tier 1 = highest risk → more urgent); a critical episode is always 1. Late evidence is held
    at routine review (4) or lower."""
    p = _BASE_PRIORITY[severity]
    if severity < Severity.CRITICAL:
        p = min(5, max(1, p + _TIER_SHIFT.get(risk_tier, 0)))
    if late:
        p = max(p, LATE_PRIORITY)
    return p


@dataclass(slots=True)
class Episode:
    """An alert episode (row of ``alert_episodes``)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    family: str
    rule_id: str
    state: str
    severity: Severity
    priority: int
    site_id: str | None
    program_id: str | None
    opened_at: datetime  # clinical time of the first evidence
    last_at: datetime  # clinical time of the latest evidence
    created_at: datetime
    updated_at: datetime
    count: int
    value_code: str
    first_value: float
    last_value: float
    worst_value: float
    explanation: str
    evidence: list[uuid.UUID]
    threshold_version: str
    thresholds: dict[str, float]
    late: bool = False
    confirm_by: datetime | None = None
    clear_candidate_at: datetime | None = None
    cleared_at: datetime | None = None
    sla_due_at: datetime | None = None
    escalation_level: int = 0
    assignee: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    note: str | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str | None = None
    suppressed_by: uuid.UUID | None = None

    @property
    def escalation_role(self) -> str:
        return ESCALATION_LEVELS[min(self.escalation_level, len(ESCALATION_LEVELS) - 1)]


@dataclass(frozen=True, slots=True)
class Event:
    """An audited transition or change of an episode (row of ``alert_episode_events``)."""

    episode_id: uuid.UUID
    at: datetime  # wall clock
    kind: str
    actor: str
    from_state: str | None
    to_state: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PatientContext:
    patient_id: uuid.UUID
    site_id: str | None
    program_id: str | None
    risk_tier: int
    thresholds: ThresholdSet
    tz: tzinfo = UTC


@dataclass(frozen=True, slots=True)
class Facts:
    """What the scheduler knows beyond readings. ``None`` fields are unknown (no change)."""

    last_reading_at: datetime | None = None
    gateway_offline_since: datetime | None = None
    gateway_known: bool = False
    low_batteries: tuple[tuple[str, float], ...] | None = None


@dataclass(slots=True)
class Book:
    """A patient's active episodes, and what changed in this pass."""

    active: dict[str, Episode] = field(default_factory=dict)
    changed: dict[uuid.UUID, Episode] = field(default_factory=dict)
    new: set[uuid.UUID] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def of(cls, episodes: Iterable[Episode]) -> Book:
        return cls(active={e.family: e for e in episodes if e.state != "resolved"})

    def _event(
        self,
        ep: Episode,
        now: datetime,
        kind: str,
        from_state: str | None,
        detail: Mapping[str, Any] | None = None,
        actor: str = "system",
    ) -> None:
        self.events.append(Event(ep.id, now, kind, actor, from_state, ep.state, dict(detail or {})))
        ep.updated_at = now
        self.changed[ep.id] = ep

    # -- transitions -----------------------------------------------------------------------

    def open_(self, ep: Episode, ctx: PatientContext, now: datetime, detail: str) -> None:
        before = ep.state
        ep.state = "open"
        ep.confirm_by = None
        ep.sla_due_at = now + SLA[ep.priority]
        self._event(ep, now, "opened", before, {"reason": detail, "priority": ep.priority})
        self._inhibit(ep, now)

    def _inhibit(self, ep: Episode, now: datetime) -> None:
        for other in self.active.values():
            if other is ep or other.suppressed_by is not None:
                continue
            if ep.family in FAMILIES[other.family].inhibited_by:
                other.suppressed_by = ep.id
                self._event(other, now, "suppressed", other.state, {"by": str(ep.id)})

    def _release(self, ep: Episode, now: datetime) -> None:
        for other in self.active.values():
            if other.suppressed_by == ep.id:
                other.suppressed_by = None
                if other.state == "open":
                    other.sla_due_at = now + SLA[other.priority]
                self._event(other, now, "unsuppressed", other.state, {"by": str(ep.id)})

    def resolve(self, ep: Episode, now: datetime, outcome: str, actor: str = "system") -> None:
        before = ep.state
        ep.state = "resolved"
        ep.resolved_at = now
        ep.resolved_by = actor
        ep.outcome = outcome
        ep.clear_candidate_at = None
        self._event(ep, now, "resolved", before, {"outcome": outcome}, actor)
        self.active.pop(ep.family, None)
        self._release(ep, now)

    def clear(self, ep: Episode, at: datetime, now: datetime) -> None:
        """The condition is over (past the band, for the hold time). Device families and
        episodes below high severity that nobody has taken resolve themselves; high/critical or
        acknowledged ones stay for a person to close, marked cleared."""
        ep.cleared_at = at
        ep.clear_candidate_at = None
        self._event(ep, now, "cleared", ep.state, {"at": at.isoformat()})
        fam = FAMILIES[ep.family]
        if ep.state == "pending":
            self.resolve(ep, now, "not_confirmed")
        elif fam.device or (ep.state == "open" and ep.severity < Severity.HIGH):
            self.resolve(ep, now, "auto_cleared")

    # -- findings --------------------------------------------------------------------------

    def on_finding(
        self,
        ctx: PatientContext,
        f: Finding,
        now: datetime,
        reading_id: uuid.UUID | None,
    ) -> Episode:
        late = now - f.time > LATE_AFTER
        ep = self.active.get(f.family)
        if ep is None:
            return self._create(ctx, f, now, late, reading_id)
        if reading_id is not None and reading_id in ep.evidence:
            return ep  # the same reading again: nothing new
        ep.count += 1
        for rid in f.evidence:
            if rid not in ep.evidence:
                ep.evidence.append(rid)
        del ep.evidence[:-_MAX_EVIDENCE]
        if f.time >= ep.last_at:
            ep.last_at = f.time
            ep.last_value = f.value
        if f.code == ep.value_code:
            high = FAMILIES[f.family].direction == "high"
            ep.worst_value = max(ep.worst_value, f.value) if high else min(ep.worst_value, f.value)
        ep.clear_candidate_at = None
        ep.updated_at = now
        self.changed[ep.id] = ep
        if ep.cleared_at is not None:
            ep.cleared_at = None
            self._event(ep, now, "recurred", ep.state, {"rule": f.rule_id})
        if ep.late and not late:
            ep.late = False
            self._reprioritise(ep, ctx, now, late=False)
        if f.severity > ep.severity:
            before = ep.severity
            ep.severity = f.severity
            ep.rule_id = f.rule_id
            ep.explanation = _late_text(f, now) if late else f.explanation
            ep.threshold_version = f.threshold_version
            ep.thresholds = dict(f.thresholds)
            ep.value_code = f.code
            ep.worst_value = f.value
            self._event(
                ep,
                now,
                "severity_raised",
                ep.state,
                {"from": before.label, "to": f.severity.label, "rule": f.rule_id, "late": late},
            )
            self._reprioritise(ep, ctx, now, late=late)
        elif f.severity == ep.severity and not late:
            ep.explanation = f.explanation
            ep.rule_id = f.rule_id
        if ep.state == "pending" and f.confirm_by is None:
            ep.explanation = f.explanation if not late else _late_text(f, now)
            self.open_(ep, ctx, now, "confirmed")
        return ep

    def _reprioritise(self, ep: Episode, ctx: PatientContext, now: datetime, late: bool) -> None:
        p = priority_for(ep.severity, ctx.risk_tier, late)
        if p < ep.priority:
            ep.priority = p
            if ep.state == "open":
                due = now + SLA[p]
                ep.sla_due_at = due if ep.sla_due_at is None else min(ep.sla_due_at, due)

    def _create(
        self,
        ctx: PatientContext,
        f: Finding,
        now: datetime,
        late: bool,
        reading_id: uuid.UUID | None,
    ) -> Episode:
        key = reading_id or (f.evidence[0] if f.evidence else None)
        seed = f"{ctx.patient_id}/{f.family}/{key or f.time.isoformat()}"
        ep = Episode(
            id=uuid.uuid5(_NS, seed),
            patient_id=ctx.patient_id,
            family=f.family,
            rule_id=f.rule_id,
            state="pending",
            severity=f.severity,
            priority=priority_for(f.severity, ctx.risk_tier, late),
            site_id=ctx.site_id,
            program_id=ctx.program_id,
            opened_at=f.time,
            last_at=f.time,
            created_at=now,
            updated_at=now,
            count=1,
            value_code=f.code,
            first_value=f.value,
            last_value=f.value,
            worst_value=f.value,
            explanation=_late_text(f, now) if late else f.explanation,
            evidence=list(f.evidence[-_MAX_EVIDENCE:]),
            threshold_version=f.threshold_version,
            thresholds=dict(f.thresholds),
            late=late,
            confirm_by=f.confirm_by,
        )
        self.active[f.family] = ep
        self.new.add(ep.id)
        self.changed[ep.id] = ep
        for fam in FAMILIES[f.family].inhibited_by:
            inh = self.active.get(fam)
            if inh is not None and inh.state in ("open", "acknowledged"):
                ep.suppressed_by = inh.id
        if f.confirm_by is not None:
            self._event(
                ep,
                now,
                "pending",
                None,
                {"rule": f.rule_id, "severity": f.severity.label, "late": late},
            )
        else:
            self._event(ep, now, "created", None, {"rule": f.rule_id, "severity": f.severity.label})
            self.open_(ep, ctx, now, "late data" if late else "threshold")
        return ep

    def on_verdicts(
        self,
        ctx: PatientContext,
        family: str,
        verdicts: Sequence[Verdict],
        at: datetime,
        now: datetime,
        reading_id: uuid.UUID | None,
    ) -> None:
        findings = [v.finding for v in verdicts if v.finding is not None]
        if findings:
            worst = max(findings, key=lambda f: (f.severity, f.confirm_by is None))
            evidence = tuple(dict.fromkeys(r for f in findings for r in f.evidence))
            if len(findings) > 1:
                worst = Finding(
                    worst.rule_id,
                    worst.family,
                    worst.severity,
                    worst.time,
                    worst.code,
                    worst.value,
                    worst.explanation,
                    evidence,
                    worst.thresholds,
                    worst.threshold_version,
                    worst.confirm_by,
                )
            self.on_finding(ctx, worst, now, reading_id)
            return
        ep = self.active.get(family)
        if ep is None:
            return
        if ep.state == "pending" and any(v.disconfirm for v in verdicts):
            self.resolve(ep, now, "not_confirmed")
            return
        if verdicts and all(v.clear for v in verdicts):
            self.on_clear(ep, at, now)
        elif ep.clear_candidate_at is not None:
            ep.clear_candidate_at = None  # inside the band again: the hold starts over
            self.changed[ep.id] = ep

    def on_clear(self, ep: Episode, at: datetime, now: datetime) -> None:
        if ep.cleared_at is not None:
            return
        hold = FAMILIES[ep.family].clear_hold
        if ep.state == "pending" or not hold:
            self.clear(ep, at, now)
            return
        if ep.clear_candidate_at is None:
            ep.clear_candidate_at = at
            self.changed[ep.id] = ep
        elif at - ep.clear_candidate_at >= hold:
            self.clear(ep, ep.clear_candidate_at + hold, now)


def _late_text(f: Finding, now: datetime) -> str:
    age = now - f.time
    days = age.total_seconds() / 86400
    when = f"{days:.0f} days" if days >= 1.5 else f"{age.total_seconds() / 3600:.0f} hours"
    return f"Late data (measured {when} before it arrived): {f.explanation}"


PERIOD = timedelta(hours=6)  # how often the periodic rules (7-day mean) run


def _rules_for(ctx: PatientContext, type_: str) -> tuple[str, ...]:
    return _rules_cached(ctx.thresholds.enabled, type_)


@functools.lru_cache(maxsize=1024)
def _rules_cached(enabled: frozenset[str], type_: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            rid
            for rid in enabled
            if (rule := RULES.get(rid)) is not None
            and type_ in rule.types
            and rule.kind != "timed"
            and not rule.periodic
        )
    )


def history_needs(
    ctx: PatientContext, book: Book, readings: Sequence[StoredReading]
) -> dict[str, tuple[datetime, datetime]]:
    """The history (reading type → clinical-time window) the rules may read for these new
    readings; empty when every reading is unremarkable. The live path loads only this."""
    needs: dict[str, tuple[datetime, datetime]] = {}
    for r in readings:
        quality = assess(r)
        for rid in _rules_for(ctx, r.type):
            rule = RULES[rid]
            params = ctx.thresholds.rule(rid)
            if rule.wants_history(quality.values, r.flags, params, rule.family in book.active):
                start = r.time - rule.lookback(params)
                for type_ in rule.types:
                    old = needs.get(type_)
                    needs[type_] = (
                        (start, r.time)
                        if old is None
                        else (min(old[0], start), max(old[1], r.time))
                    )
    return needs


def periodic_rules(ctx: PatientContext) -> list[str]:
    return sorted(
        rid
        for rid in ctx.thresholds.enabled
        if (rule := RULES.get(rid)) is not None and rule.periodic
    )


def evaluate_periodic(
    ctx: PatientContext, history: History, book: Book, at: datetime, now: datetime
) -> None:
    """Run the periodic rules (the 7-day mean) as of ``at``."""
    by_family: dict[str, list[Verdict]] = {}
    ev = Eval(None, None, history, ctx.thresholds, ctx.tz, at)
    for rid in periodic_rules(ctx):
        rule = RULES[rid]
        ev.params = ctx.thresholds.rule(rid)
        verdict = rule.evaluate(ev)
        if verdict is not None:
            by_family.setdefault(rule.family, []).append(verdict)
    for family, verdicts in by_family.items():
        book.on_verdicts(ctx, family, verdicts, at, now, None)


def evaluate_patient(
    ctx: PatientContext,
    history: History,
    book: Book,
    readings: Sequence[StoredReading],
    now: datetime,
) -> None:
    """Evaluate a patient's new readings in clinical-time order against the history (which
    must not yet contain them); deadlines falling between readings are processed in order."""
    for r in sorted(readings, key=lambda r: (r.time, r.reading_id)):
        if r.reading_id in history:
            continue  # a duplicate never raises anything new
        if book.active:
            advance(ctx, book, r.time, now)
        quality = assess(r)
        point = history.add(r, quality)
        ev = Eval(r, point, history, ctx.thresholds, ctx.tz, r.time, active=book.active)
        by_family: dict[str, list[Verdict]] = {}
        for rid in _rules_for(ctx, r.type):
            rule = RULES[rid]
            ev.params = ctx.thresholds.rule(rid)
            verdict = rule.evaluate(ev)
            if verdict is not None:
                by_family.setdefault(rule.family, []).append(verdict)
        for family, verdicts in by_family.items():
            book.on_verdicts(ctx, family, verdicts, r.time, now, r.reading_id)
        missing = book.active.get("missing_data")
        if missing is not None and "control_solution" not in r.flags:
            book.clear(missing, r.time, now)
    advance(ctx, book, now, now)


def advance(
    ctx: PatientContext,
    book: Book,
    until: datetime,
    now: datetime,
    facts: Facts | None = None,
    *,
    escalate: bool = False,
) -> None:
    """Process what time alone decides, up to ``until``: confirmation deadlines, hold times
    of clearing episodes; with ``facts``, the timed rules (missing data, gateway offline,
    battery low); with ``escalate``, SLA escalation and snooze expiry at ``now``."""
    for ep in list(book.active.values()):
        if ep.state == "pending" and ep.confirm_by is not None and ep.confirm_by <= until:
            minutes = (ep.confirm_by - ep.opened_at).total_seconds() / 60
            ep.explanation = ep.explanation.replace(
                f"re-measure requested within {minutes:.0f} min",
                f"no re-measure came within {minutes:.0f} min",
            )
            if now - ep.opened_at > LATE_AFTER:
                ep.late = True
                ep.priority = max(ep.priority, LATE_PRIORITY)
            book.open_(ep, ctx, now, "no re-measure")
        elif (
            ep.clear_candidate_at is not None
            and ep.cleared_at is None
            and ep.clear_candidate_at + FAMILIES[ep.family].clear_hold <= until
        ):
            book.clear(ep, ep.clear_candidate_at + FAMILIES[ep.family].clear_hold, now)
    if facts is not None:
        _timed_rules(ctx, book, until, now, facts)
    if escalate:
        for ep in list(book.active.values()):
            if ep.snoozed_until is not None and ep.snoozed_until <= now:
                ep.snoozed_until = None
                book._event(ep, now, "snooze_expired", ep.state)
            if (
                ep.state == "open"
                and ep.suppressed_by is None
                and ep.snoozed_until is None
                and ep.sla_due_at is not None
                and ep.sla_due_at <= now
                and ep.escalation_level < len(ESCALATION_LEVELS) - 1
            ):
                ep.escalation_level += 1
                ep.sla_due_at = now + SLA[ep.priority]
                book._event(
                    ep,
                    now,
                    "escalated",
                    ep.state,
                    {"to": ep.escalation_role, "level": ep.escalation_level},
                )


def _timed_finding(
    ctx: PatientContext,
    rule_id: str,
    severity: Severity,
    at: datetime,
    value: float,
    text: str,
) -> Finding:
    params = ctx.thresholds.rule(rule_id)
    return Finding(
        rule_id=rule_id,
        family=RULES[rule_id].family,
        severity=severity,
        time=at,
        code=rule_id,
        value=value,
        explanation=text,
        evidence=(),
        thresholds={k: v.value for k, v in params.items()},
        threshold_version=ctx.thresholds.version_label(rule_id),
    )


def _source(ctx: PatientContext, rule_id: str, name: str) -> str:
    v = ctx.thresholds.rule(rule_id)[name]
    if v.scope in ("patient", "site"):
        return f"{v.scope} threshold (override #{v.version_id} v{v.version})"
    return f"program {ctx.thresholds.program} threshold"


def _timed_rules(
    ctx: PatientContext, book: Book, until: datetime, now: datetime, facts: Facts
) -> None:
    enabled = ctx.thresholds.enabled
    if "gateway_offline" in enabled and facts.gateway_known:
        ep = book.active.get("gateway_offline")
        hours = ctx.thresholds.rule("gateway_offline")["hours"].value
        since = facts.gateway_offline_since
        if since is not None and until - since >= timedelta(hours=hours):
            if ep is None:
                off = (until - since).total_seconds() / 3600
                text = (
                    f"Home gateway offline for {off:.0f} hours; "
                    f"{_source(ctx, 'gateway_offline', 'hours')} {hours:.0f} h"
                )
                f = _timed_finding(
                    ctx, "gateway_offline", Severity.LOW, since + timedelta(hours=hours), off, text
                )
                book.on_finding(ctx, f, now, None)
        elif since is None and ep is not None:
            book.clear(ep, until, now)
    if "battery_low" in enabled and facts.low_batteries is not None:
        ep = book.active.get("battery_low")
        limit = ctx.thresholds.rule("battery_low")["percent"].value
        low = [(d, lvl) for d, lvl in facts.low_batteries if lvl <= limit]
        if low and ep is None:
            worst = min(lvl for _, lvl in low)
            text = (
                f"{len(low)} device battery level(s) at or below {limit:.0f} % (lowest "
                f"{worst:.0f} %); {_source(ctx, 'battery_low', 'percent')}"
            )
            book.on_finding(
                ctx,
                _timed_finding(ctx, "battery_low", Severity.INFO, until, worst, text),
                now,
                None,
            )
        elif not low and ep is not None:
            book.clear(ep, until, now)
    if "missing_data" in enabled and facts.last_reading_at is not None:
        ep = book.active.get("missing_data")
        days = ctx.thresholds.rule("missing_data")["days"].value
        deadline = facts.last_reading_at + timedelta(days=days)
        if deadline <= until and ep is None:
            gap = (until - facts.last_reading_at).total_seconds() / 86400
            text = (
                f"No readings for {gap:.1f} days; "
                f"{_source(ctx, 'missing_data', 'days')} {days:.0f} days"
            )
            book.on_finding(
                ctx,
                _timed_finding(ctx, "missing_data", Severity.LOW, deadline, gap, text),
                now,
                None,
            )
        elif deadline > until and ep is not None:
            book.clear(ep, until, now)
