"""Episodes and the evaluation loop shared by the live path, the scheduler and the replay.

One active (not resolved) episode per (patient, family). Findings coalesce into it (count,
first/last/worst value, evidence), raise its severity, and confirm a pending one; clearing needs
the value back past the rule's hysteresis band for the family's hold time. Pure: the caller
passes the wall clock ``now`` and persists what changed (``Book.changed`` / ``Book.events``).

Never silent on a new emergency: an acknowledged, claimed or snoozed episode never hides a
finding that would have opened or escalated an episode on its own. Such a finding *re-notifies*
(event ``renotified``): the episode is open again, unsnoozed, with a fresh SLA from the new
reading and its escalation chain restarted.

Late data: each family has a clinical relevance window (``RELEVANCE``). Within it a late finding
is as urgent as a live one (its text says "measured 7 h ago, arrived now"); past it, it is
recorded (count, worst value, evidence, severity) but never pages: an episode opened from such
evidence only is marked ``late`` and held at routine review (4); fresh evidence lifts it.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from alerts._history import History
from alerts._model import REPORT_TYPES, Severity, StoredReading, assess
from alerts._programs import Override, ThresholdSet, ThresholdValue, resolve_thresholds
from alerts._rules import FAMILIES, REWEIGH_TEXT, RULES, Eval, Finding, Rule, Verdict

__all__ = [
    "ESCALATION_LEVELS",
    "LATE_AFTER",
    "NOTIFYING_EVENTS",
    "OUTCOMES",
    "PERIOD",
    "PERSON_OUTCOMES",
    "QUEUES",
    "QUIET",
    "RELEVANCE",
    "RENOTIFY_AFTER",
    "SLA",
    "SNOOZE_MAX",
    "STATES",
    "SYSTEM_OUTCOMES",
    "TECHNICAL_FAMILIES",
    "ActionError",
    "Book",
    "Episode",
    "Event",
    "Facts",
    "PatientContext",
    "advance",
    "evaluate_patient",
    "evaluate_periodic",
    "history_needs",
    "max_escalation",
    "periodic_rules",
    "priority_for",
    "quiet_ends",
    "quiet_for",
    "quiet_held",
    "rules_for",
    "sla_for",
    "thresholds_for",
    "timers",
]

LATE_AFTER = timedelta(hours=6)  # the default clinical relevance window (see RELEVANCE)
STATES = ("pending", "open", "acknowledged", "resolved")
ESCALATION_LEVELS = ("care_manager", "supervisor", "on_call_clinician")
QUEUES = ("clinical", "technical")
# priority (1 = most urgent) -> time to acknowledge, and the step between escalation levels
SLA: Mapping[int, timedelta] = {
    1: timedelta(minutes=30),
    2: timedelta(hours=4),
    3: timedelta(hours=24),
    4: timedelta(hours=72),
    5: timedelta(days=7),
}
# Per program template, where it is more urgent than SLA. maternal_postpartum: ACOG Committee
# Opinion 767 asks for treatment of severe-range BP within 30-60 min, so a critical episode
# goes care manager -> supervisor at 15 min -> on-call clinician at 30 min.
SLA_BY_PROGRAM: Mapping[str, Mapping[int, timedelta]] = {
    "maternal_postpartum": {1: timedelta(minutes=15), 2: timedelta(hours=1)},
}
LATE_PRIORITY = 4
# How far an unacknowledged episode escalates: the on-call clinician is for the urgent ones
# (priority 1-2); routine ones stop at the supervisor.
_MAX_ESCALATION = {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}


def max_escalation(priority: int) -> int:
    """The highest escalation level (index in ``ESCALATION_LEVELS``) for ``priority``."""
    return _MAX_ESCALATION.get(priority, 1)


# The outcomes only the system records; a person cannot choose them.
SYSTEM_OUTCOMES = frozenset({"auto_cleared", "not_confirmed"})
PERSON_OUTCOMES = frozenset(
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
        "other",
    }
)
OUTCOMES = PERSON_OUTCOMES | SYSTEM_OUTCOMES
# Events that put an episode in front of a person with a new SLA (``detail["notify"]`` says
# whether it did: not for a technical item, a late-only, suppressed or quiet episode).
NOTIFYING_EVENTS = frozenset({"opened", "escalated", "renotified"})
# Device health: a technical queue, one open item per device and problem, cleared when fixed.
TECHNICAL_FAMILIES = frozenset({"device_clock", "gateway_offline", "battery_low"})
_PER_DEVICE = frozenset({"device_clock"})
# How long a finding stays clinically urgent after it was measured. A severe BP or a level-2
# hypoglycaemia measured hours ago still needs a call today; a weight gain measured yesterday
# still needs one (daily weights); device and missing-data findings are never late.
RELEVANCE: Mapping[str, timedelta] = {
    "bp_crisis": timedelta(hours=24),
    "bp_high": timedelta(hours=72),
    "bp_low": timedelta(hours=24),
    "bp_mean": timedelta(days=7),
    "weight_gain": timedelta(hours=48),
    "glucose_low": timedelta(hours=24),
    "glucose_high": timedelta(hours=24),
    "symptom": timedelta(hours=24),  # a postpartum warning sign reported late still needs a call
}
# Same-day (priority 2 at most) whatever the risk tier: ADA level-2 hypoglycaemia and a meter LO
# (both glucose_low at high severity), a meter HI, an unconfirmed (device-flagged) crisis value.
_PRIORITY_CAP: Mapping[tuple[str, Severity], int] = {
    ("glucose_low", Severity.HIGH): 2,
    ("glucose_high", Severity.HIGH): 2,
    ("bp_crisis", Severity.HIGH): 2,
}
# Longest snooze a person may set, per severity; critical episodes cannot be snoozed.
SNOOZE_MAX: Mapping[Severity, timedelta | None] = {
    Severity.CRITICAL: None,
    Severity.HIGH: timedelta(hours=4),
    Severity.MODERATE: timedelta(hours=72),
    Severity.LOW: timedelta(days=7),
    Severity.INFO: timedelta(days=14),
}
# Quiet period after a person resolves an episode with an outcome: a new episode of the same
# family at no higher severity is recorded but held (snoozed) until it ends. None for the
# emergencies: a new crisis or hypoglycaemia always notifies. Per family; per program below.
QUIET: Mapping[str, timedelta] = {
    # 2025 AHA/ACC (as 2017 §8.3.1): after starting or adjusting treatment, follow up at
    # monthly intervals until control; a dose change shows its full effect in 2-4 weeks. So the
    # same 7-day mean is not raised again for 4 weeks; the same high BP level (N of M home
    # readings) for 10 days, so a lasting one is back in front of a person within the 10 days
    # home-BP review allows. A rise in severity, or a crisis, always notifies at once.
    "bp_high": timedelta(days=10),
    "bp_mean": timedelta(days=28),
    "bp_low": timedelta(hours=24),
    "weight_gain": timedelta(hours=48),
    "glucose_high": timedelta(hours=24),
    "missing_data": timedelta(days=3),
}
QUIET_BY_PROGRAM: Mapping[str, Mapping[str, timedelta]] = {
    # postpartum pre-eclampsia can worsen within a day (ACOG Practice Bulletin 222)
    "maternal_postpartum": {"bp_high": timedelta(hours=24)},
}
# Outcomes that start no quiet period: nobody reached the patient.
_NO_QUIET = frozenset({"patient_unreachable"})
# After a person claimed/acknowledged an episode (or it was last notified), an urgent finding of
# the same severity measured within this time is the one they are already handling (ACOG: treat
# within 30-60 min); a later one is a new emergency and renotifies. For the persistence families
# (N of M readings, changes over days) the same ongoing condition re-notifies at most this
# often; a 7-day mean never does (it is never urgent).
RENOTIFY_GRACE = timedelta(hours=1)
RENOTIFY_AFTER: Mapping[str, timedelta | None] = {
    "bp_crisis": RENOTIFY_GRACE,
    "glucose_low": RENOTIFY_GRACE,
    "bp_low": RENOTIFY_GRACE,
    "glucose_high": timedelta(hours=24),
    "bp_high": timedelta(hours=72),
    "weight_gain": timedelta(hours=72),
    "bp_mean": None,
}
# An acknowledged crisis inhibits lesser BP episodes only while its evidence is this recent.
INHIBIT_SPAN = timedelta(hours=24)
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


class ActionError(ValueError):
    """A person's action on an episode is not allowed; ``field`` names the input at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def priority_for(
    severity: Severity, risk_tier: int, late: bool = False, family: str | None = None
) -> int:
    """1 (most urgent) .. 5: from severity, shifted one step by the patient's risk tier
    (tier 1 = highest risk → more urgent); a critical episode is always 1; level-2
    hypoglycaemia, meter LO/HI are same-day (≤ 2) for every tier. Late evidence (past the
    family's relevance window) is held at routine review (4) or lower."""
    p = _BASE_PRIORITY[severity]
    if severity < Severity.CRITICAL:
        p = min(5, max(1, p + _TIER_SHIFT.get(risk_tier, 0)))
    if family is not None:
        p = min(p, _PRIORITY_CAP.get((family, severity), p))
    if late:
        p = max(p, LATE_PRIORITY)
    return p


def relevance(family: str) -> timedelta | None:
    """How long a finding of ``family`` stays urgent; None: never late (device, missing)."""
    if FAMILIES[family].device:
        return None
    return RELEVANCE.get(family, LATE_AFTER)


def queue_of(family: str) -> str:
    return "technical" if family in TECHNICAL_FAMILIES else "clinical"


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours >= 48:
        return f"{hours / 24:.0f} days"
    if hours >= 1:
        return f"{hours:.0f} h"
    return f"{max(1, round(hours * 60))} min"


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
    queue: str = "clinical"
    subject: str | None = None  # technical items: the device
    notified_at: datetime | None = None
    handled_at: datetime | None = None
    renotify_count: int = 0

    @property
    def key(self) -> str:
        """The one-active-episode key: the family, and the device for a per-device item."""
        return self.family if self.subject is None else f"{self.family}@{self.subject}"

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
    templates: tuple[str, ...] = ()  # every running enrollment's template (SLA: most urgent)
    delivery_date: date | None = None  # maternal_postpartum


@dataclass(frozen=True, slots=True)
class Facts:
    """What the scheduler knows beyond readings. ``None`` fields are unknown (no change)."""

    last_reading_at: datetime | None = None
    gateway_offline_since: datetime | None = None
    gateway_known: bool = False
    low_batteries: tuple[tuple[str, float], ...] | None = None


# resolve_thresholds takes the postpartum delivery date where the program rules support it.
_TAKES_DELIVERY = "delivery_date" in inspect.signature(resolve_thresholds).parameters


def thresholds_for(
    program: str,
    template: str,
    overrides: Sequence[Override],
    *,
    also: tuple[str, ...] = (),
    delivery_date: date | None = None,
) -> ThresholdSet:
    """The patient's effective thresholds: primary program, other enrollments, overrides and
    (maternal_postpartum) the delivery date."""
    extra: dict[str, Any] = {"delivery_date": delivery_date} if _TAKES_DELIVERY else {}
    return resolve_thresholds(program, template, list(overrides), also=also, **extra)


def _templates(ctx: PatientContext) -> tuple[str, ...]:
    return tuple(dict.fromkeys((ctx.thresholds.template, *ctx.templates)))


def sla_for(ctx: PatientContext | None, priority: int) -> timedelta:
    """Time to acknowledge (and between escalation levels) for ``priority``: the most urgent
    among the patient's programs."""
    best = SLA[priority]
    if ctx is not None:
        for t in _templates(ctx):
            best = min(best, SLA_BY_PROGRAM.get(t, {}).get(priority, best))
    return best


def quiet_for(ctx: PatientContext, family: str) -> timedelta | None:
    """The quiet period of ``family`` after a person's resolve: the shortest among the
    patient's programs (the most protective); None: no quiet period."""
    spans = [QUIET_BY_PROGRAM.get(t, {}).get(family, QUIET.get(family)) for t in _templates(ctx)]
    if not spans or any(s is None for s in spans):
        return None
    return min(s for s in spans if s is not None)


_QUIET_REASON = "quiet period after "


@dataclass(slots=True)
class Book:
    """A patient's active episodes, and what changed in this pass. ``quiet``: per family, the
    latest resolve by a person (time, severity, outcome), for the quiet period."""

    active: dict[str, Episode] = field(default_factory=dict)
    changed: dict[uuid.UUID, Episode] = field(default_factory=dict)
    new: set[uuid.UUID] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    quiet: dict[str, tuple[datetime, Severity, str]] = field(default_factory=dict)
    ctx: PatientContext | None = None
    #: per episode, the integers of its evidence ids, kept with ``evidence`` by ``on_finding``
    #: (its only writer after creation): a finding costs its own ids, not the 200 kept
    known: dict[uuid.UUID, set[int]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        episodes: Iterable[Episode],
        resolved: Iterable[Episode] = (),
        ctx: PatientContext | None = None,
    ) -> Book:
        book = cls(active={e.key: e for e in episodes if e.state != "resolved"}, ctx=ctx)
        for e in resolved:
            book._note_resolved(e)
        return book

    def _note_resolved(self, ep: Episode) -> None:
        if (
            ep.resolved_at is None
            or ep.outcome is None
            or ep.resolved_by in (None, "system")
            or ep.outcome not in PERSON_OUTCOMES - _NO_QUIET
        ):
            return
        old = self.quiet.get(ep.family)
        if old is None or old[0] < ep.resolved_at:
            self.quiet[ep.family] = (ep.resolved_at, ep.severity, ep.outcome)

    def _sla(self, priority: int, ctx: PatientContext | None = None) -> timedelta:
        return sla_for(ctx or self.ctx, priority)

    def _event(
        self,
        ep: Episode,
        now: datetime,
        kind: str,
        from_state: str | None,
        detail: Mapping[str, Any] | None = None,
        actor: str = "system",
    ) -> None:
        d = dict(detail or {})
        if kind in NOTIFYING_EVENTS:
            notify = (
                ep.queue == "clinical"
                and ep.state == "open"
                and not ep.late
                and ep.suppressed_by is None
                and (ep.snoozed_until is None or ep.snoozed_until <= now)
            )
            d["notify"] = notify
            if notify:
                ep.notified_at = now
        self.events.append(Event(ep.id, now, kind, actor, from_state, ep.state, d))
        ep.updated_at = now
        self.changed[ep.id] = ep

    # -- transitions -----------------------------------------------------------------------

    def open_(self, ep: Episode, ctx: PatientContext, now: datetime, detail: str) -> None:
        before = ep.state
        ep.state = "open"
        ep.confirm_by = None
        ep.sla_due_at = now + self._sla(ep.priority, ctx)
        self._event(ep, now, "opened", before, {"reason": detail, "priority": ep.priority})
        self._inhibit(ep, now)

    def renotify(
        self,
        ep: Episode,
        now: datetime,
        reason: str,
        *,
        restart: bool = True,
        ctx: PatientContext | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Back in front of a person: open, unsnoozed, a fresh SLA from now; with ``restart``
        the escalation chain starts again at the care manager (else the sooner due time)."""
        before = ep.state
        if ep.state == "acknowledged":
            ep.state = "open"
        if ep.state != "open":
            return
        ep.snoozed_until = None
        ep.snooze_reason = None
        ep.confirm_by = None
        due = now + self._sla(ep.priority, ctx)
        if restart or ep.sla_due_at is None:
            ep.escalation_level = 0
            ep.sla_due_at = due
        else:
            ep.sla_due_at = min(ep.sla_due_at, due)
        ep.renotify_count += 1
        self._event(
            ep,
            now,
            "renotified",
            before,
            {"reason": reason, "priority": ep.priority, **(detail or {})},
        )
        if before != "open":
            self._inhibit(ep, now)  # back at the top: it speaks for its lesser episodes again

    def _inhibits(self, inh: Episode, at: datetime) -> bool:
        """Whether ``inh`` still inhibits lesser episodes: while open; once acknowledged, a
        clinical inhibitor only while its evidence is recent (a crisis acknowledged days ago
        must not silence a new high BP)."""
        if inh.state == "open":
            return True
        if inh.state != "acknowledged":
            return False
        return inh.queue == "technical" or at - inh.last_at <= INHIBIT_SPAN

    def _inhibit(self, ep: Episode, now: datetime) -> None:
        for other in self.active.values():
            if other is ep or other.suppressed_by is not None:
                continue
            if ep.family in FAMILIES[other.family].inhibited_by:
                other.suppressed_by = ep.id
                self._event(other, now, "suppressed", other.state, {"by": str(ep.id)})

    def _release(self, ep: Episode, now: datetime, reason: str = "inhibitor resolved") -> None:
        """Releasing an inhibitor re-evaluates what it inhibited: an open episode comes back
        in front of a person with a fresh SLA."""
        for other in list(self.active.values()):
            if other.suppressed_by == ep.id:
                self._unsuppress(other, now, ep.id, reason)

    def _unsuppress(self, other: Episode, now: datetime, by: uuid.UUID, reason: str) -> None:
        other.suppressed_by = None
        if other.state == "open":
            other.sla_due_at = now + self._sla(other.priority)
        self._event(other, now, "unsuppressed", other.state, {"by": str(by)})
        if other.state == "open" and other.cleared_at is None:
            self.renotify(other, now, reason)

    def resolve(self, ep: Episode, now: datetime, outcome: str, actor: str = "system") -> None:
        before = ep.state
        ep.state = "resolved"
        ep.resolved_at = now
        ep.resolved_by = actor
        ep.outcome = outcome
        ep.clear_candidate_at = None
        ep.confirm_by = None
        self._event(ep, now, "resolved", before, {"outcome": outcome}, actor)
        if self.active.get(ep.key) is ep:
            del self.active[ep.key]
        self._note_resolved(ep)
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
        elif fam.device or ep.queue == "technical":
            self.resolve(ep, now, "auto_cleared")
        elif ep.state == "open" and ep.severity < Severity.HIGH and not quiet_held(ep, now):
            # (an item held in a quiet period stays, marked cleared, until the period ends: a
            # recurrence inside it re-arms the same item instead of opening another)
            self.resolve(ep, now, "auto_cleared")

    # -- a person's actions (the web app through alerts._lifecycle, and the replay) ---------

    def claim(self, ep: Episode, at: datetime, assignee: str, actor: str) -> None:
        if not assignee:
            raise ActionError("assignee", "an assignee is required")
        before = ep.assignee
        ep.assignee = assignee
        ep.handled_at = at
        self._event(ep, at, "assigned", ep.state, {"assignee": assignee, "was": before}, actor)

    def acknowledge(self, ep: Episode, at: datetime, actor: str, note: str | None = None) -> None:
        before = ep.state
        ep.state = "acknowledged"
        ep.acknowledged_at = at
        ep.acknowledged_by = actor
        ep.handled_at = at
        ep.confirm_by = None
        if ep.assignee is None:
            ep.assignee = actor
        if note:
            ep.note = note
        self._event(ep, at, "acknowledged", before, {"note": bool(note)}, actor)

    def snooze(self, ep: Episode, at: datetime, actor: str, reason: str, until: datetime) -> None:
        """Hide and hold the SLA until ``until``: at most ``SNOOZE_MAX`` for the severity,
        never for a critical episode."""
        if not reason:
            raise ActionError("reason", "a reason is required")
        if until <= at:
            raise ActionError("until", "until must be in the future")
        limit = SNOOZE_MAX[ep.severity]
        if limit is None:
            raise ActionError("action", f"a {ep.severity.label} episode cannot be snoozed")
        if until - at > limit:
            hours = limit.total_seconds() / 3600
            raise ActionError(
                "until", f"a {ep.severity.label} episode can be snoozed for at most {hours:.0f} h"
            )
        ep.snoozed_until = until
        ep.snooze_reason = reason
        ep.handled_at = at
        if ep.state == "open":
            ep.sla_due_at = until + self._sla(ep.priority)
        self._event(
            ep, at, "snoozed", ep.state, {"until": until.isoformat(), "reason": reason}, actor
        )

    def resolve_by(
        self,
        ep: Episode,
        at: datetime,
        actor: str,
        outcome: str | None,
        note: str | None = None,
        *,
        require_note: bool = True,
    ) -> None:
        """A person resolves: an outcome people choose (``PERSON_OUTCOMES``), and a note for a
        critical episode."""
        if not outcome:
            raise ActionError("outcome", "an outcome is required")
        if outcome not in PERSON_OUTCOMES:
            if outcome in SYSTEM_OUTCOMES:
                raise ActionError("outcome", f"{outcome!r} is recorded by the system only")
            raise ActionError("outcome", f"unknown outcome {outcome!r}")
        if require_note and ep.severity >= Severity.CRITICAL and not (note and note.strip()):
            raise ActionError("note", "a note is required to resolve a critical episode")
        if note:
            ep.note = note
        self.active.setdefault(ep.key, ep)
        self.resolve(ep, at, outcome, actor)

    # -- findings --------------------------------------------------------------------------

    def on_finding(
        self,
        ctx: PatientContext,
        f: Finding,
        now: datetime,
        reading_id: uuid.UUID | None,
        subject: str | None = None,
    ) -> Episode | None:
        window = relevance(f.family)
        late = window is not None and now - f.time > window
        ep = self.active.get(f.family if subject is None else f"{f.family}@{subject}")
        if ep is None:
            covered = FAMILIES[f.family].covered_by
            if _rerun(f.rule_id) and (
                self._quiet_until(ctx, f, now) is not None
                or any(fam in self.active for fam in covered)
                or any(self._quiet_until(ctx, f, now, fam) is not None for fam in covered)
            ):
                # the condition a person just handled (quiet period), or one an open episode
                # already speaks for, found again by a rule the scheduler re-runs (7-day mean,
                # missing data): no new item now; a later pass finds it, if it is still there
                return None
            return self._create(ctx, f, now, late, reading_id, subject)
        known = self.known.get(ep.id)
        if known is None:  # (an int hashes in C, a UUID in Python)
            known = self.known[ep.id] = {rid.int for rid in ep.evidence}
        if reading_id is not None and reading_id.int in known:
            return ep  # the same reading again: nothing new
        ep.count += 1
        for rid in f.evidence:
            if rid.int not in known:
                known.add(rid.int)
                ep.evidence.append(rid)
        dropped = len(ep.evidence) - _MAX_EVIDENCE
        if dropped > 0:
            known.difference_update(rid.int for rid in ep.evidence[:dropped])
            del ep.evidence[:dropped]
            if len(known) != len(ep.evidence):  # an id kept twice (never written so): recount
                known.clear()
                known.update(rid.int for rid in ep.evidence)
        if f.time >= ep.last_at:
            ep.last_at = f.time
            ep.last_value = f.value
        if f.code == ep.value_code:
            high = FAMILIES[f.family].direction == "high"
            ep.worst_value = max(ep.worst_value, f.value) if high else min(ep.worst_value, f.value)
        ep.clear_candidate_at = None
        ep.updated_at = now
        self.changed[ep.id] = ep
        recurred = False
        if ep.cleared_at is not None:
            ep.cleared_at = None
            recurred = True
            self._event(ep, now, "recurred", ep.state, {"rule": f.rule_id})
        released = False
        if ep.suppressed_by is not None:
            inh = next((o for o in self.active.values() if o.id == ep.suppressed_by), None)
            if inh is None or not self._inhibits(inh, f.time):
                # the inhibitor was handled long ago: it no longer speaks for this finding
                ep.suppressed_by = None
                released = True
                self._event(ep, now, "unsuppressed", ep.state, {"by": str(inh.id if inh else "")})
        lifted = False
        if ep.late and not late:
            ep.late = False
            lifted = True
            ep.priority = priority_for(ep.severity, ctx.risk_tier, False, ep.family)
        rose = f.severity > ep.severity
        priority_before = ep.priority
        if rose:
            before = ep.severity
            ep.severity = f.severity
            ep.value_code = f.code
            ep.worst_value = f.value
            self._speak(ep, f, now, late)
            self._event(
                ep,
                now,
                "severity_raised",
                ep.state,
                {"from": before.label, "to": f.severity.label, "rule": f.rule_id, "late": late},
            )
            p = priority_for(ep.severity, ctx.risk_tier, late, ep.family)
            ep.priority = min(ep.priority, p)
        elif f.severity == ep.severity and not late:
            self._speak(ep, f, now, late)
        if ep.state == "pending":
            if f.confirm_by is None:
                ep.explanation = _text(f, now, late)
                self.open_(ep, ctx, now, "confirmed")
            return ep
        if late:
            return ep  # past its relevance window: recorded, never pages
        self._never_silent(ep, ctx, f, now, rose, recurred or released, lifted, priority_before)
        return ep

    def _speak(self, ep: Episode, f: Finding, now: datetime, late: bool) -> None:
        """The rule that speaks: its text, its rule id and its threshold version, together. A
        threshold that changed under the episode is an event."""
        if f.rule_id == ep.rule_id and f.threshold_version != ep.threshold_version:
            self._event(
                ep,
                now,
                "thresholds_changed",
                ep.state,
                {"rule": f.rule_id, "from": ep.threshold_version, "to": f.threshold_version},
            )
        ep.rule_id = f.rule_id
        ep.explanation = _text(f, now, late)
        ep.threshold_version = f.threshold_version
        ep.thresholds = dict(f.thresholds)

    def _never_silent(
        self,
        ep: Episode,
        ctx: PatientContext,
        f: Finding,
        now: datetime,
        rose: bool,
        recurred: bool,
        lifted: bool,
        priority_before: int,
    ) -> None:
        """No acknowledged, claimed or snoozed episode hides a finding that would have opened or
        escalated an episode on its own: such a finding renotifies."""
        if ep.queue != "clinical" or ep.suppressed_by is not None:
            return  # a suppressed episode: its inhibitor speaks for it
        snoozed = ep.snoozed_until is not None and ep.snoozed_until > now
        quiet = snoozed and (ep.snooze_reason or "").startswith(_QUIET_REASON)
        # a person acted on it since it was last put in front of them (claim, acknowledge,
        # snooze); an open episode nobody touched since is still running its escalation
        handled = (
            ep.state == "acknowledged"
            or snoozed
            or (
                ep.handled_at is not None
                and (ep.notified_at is None or ep.handled_at >= ep.notified_at)
            )
        )
        urgent = priority_for(f.severity, ctx.risk_tier, False, f.family) <= 2
        reason: str | None = None
        if quiet:
            # above what the person resolved (a held item rising back to that level is not new)
            handled_severity = self.quiet[ep.family][1] if ep.family in self.quiet else None
            above = handled_severity is None or f.severity > handled_severity
            reason = "severity rose during the quiet period" if rose and above else None
        elif rose and (handled or ep.priority < priority_before):
            reason = "severity rose"
        elif recurred:
            reason = "recurred after clearing or release"
        elif lifted:
            reason = "fresh evidence"
        elif urgent and snoozed:
            reason = "new emergency while snoozed"
        elif urgent and handled:
            after = RENOTIFY_AFTER.get(ep.family, RENOTIFY_GRACE)
            marks = [t for t in (ep.handled_at, ep.acknowledged_at, ep.notified_at) if t]
            if after is not None and (not marks or f.time > max(marks) + after):
                reason = "new emergency after it was handled"
        if reason is None:
            return
        if f.confirm_by is not None and not rose:
            # a single value waiting for its re-measure: renotify when none comes in time
            if ep.confirm_by is None:
                ep.confirm_by = max(f.confirm_by, now + (f.confirm_by - f.time))
                self.changed[ep.id] = ep
            return
        self.renotify(
            ep,
            now,
            reason,
            restart=handled or lifted,
            ctx=ctx,
            detail={"rule": f.rule_id, "severity": f.severity.label},
        )

    def _quiet_until(
        self, ctx: PatientContext, f: Finding, now: datetime, family: str | None = None
    ) -> datetime | None:
        """The end of the quiet period ``f`` falls in (of its own family, or of ``family``
        that speaks for the same condition), if it is no more severe than what was resolved."""
        family = family or f.family
        q = self.quiet.get(family)
        if q is None or f.severity > q[1]:
            return None
        span = quiet_for(ctx, family)
        if span is None or now >= q[0] + span:
            return None
        return q[0] + span

    def _create(
        self,
        ctx: PatientContext,
        f: Finding,
        now: datetime,
        late: bool,
        reading_id: uuid.UUID | None,
        subject: str | None = None,
    ) -> Episode:
        key = reading_id or (f.evidence[0] if f.evidence else None)
        seed = f"{ctx.patient_id}/{f.family}/{subject or ''}/{key or f.time.isoformat()}"
        ep = Episode(
            id=uuid.uuid5(_NS, seed),
            patient_id=ctx.patient_id,
            family=f.family,
            rule_id=f.rule_id,
            # created in the state it is in: pending only while a value waits for its
            # re-measure; any other finding is open from the start (the audit trail says so)
            state="pending" if f.confirm_by is not None else "open",
            severity=f.severity,
            priority=priority_for(f.severity, ctx.risk_tier, late, f.family),
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
            explanation=_text(f, now, late),
            evidence=list(f.evidence[-_MAX_EVIDENCE:]),
            threshold_version=f.threshold_version,
            thresholds=dict(f.thresholds),
            late=late,
            confirm_by=f.confirm_by,
            queue=queue_of(f.family),
            subject=subject,
        )
        self.active[ep.key] = ep
        self.new.add(ep.id)
        self.changed[ep.id] = ep
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
        for fam in FAMILIES[f.family].inhibited_by:
            inh = self.active.get(fam)
            if inh is not None and self._inhibits(inh, f.time):
                ep.suppressed_by = inh.id
                self._event(ep, now, "suppressed", ep.state, {"by": str(inh.id)})
                break
        until = self._quiet_until(ctx, f, now)
        if until is not None:
            outcome = self.quiet[f.family][2]
            ep.snoozed_until = until
            ep.snooze_reason = _QUIET_REASON + outcome
            self._event(
                ep,
                now,
                "snoozed",
                ep.state,
                {"until": until.isoformat(), "reason": ep.snooze_reason, "quiet": True},
            )
        if f.confirm_by is None:
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
        subject: str | None = None,
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
            self.on_finding(ctx, worst, now, reading_id, subject)
            return
        ep = self.active.get(family if subject is None else f"{family}@{subject}")
        if ep is None:
            return
        if any(v.disconfirm for v in verdicts):
            if ep.state == "pending":
                self.resolve(ep, now, "not_confirmed")
                return
            if ep.confirm_by is not None:
                ep.confirm_by = None  # the re-measure did not confirm the new value
                self.changed[ep.id] = ep
        if verdicts and all(v.clear for v in verdicts):
            self.on_clear(ep, at, now)
        elif ep.clear_candidate_at is not None:
            ep.clear_candidate_at = None  # inside the band again: the hold starts over
            self.changed[ep.id] = ep

    def on_clear(self, ep: Episode, at: datetime, now: datetime) -> None:
        if ep.cleared_at is not None:
            return
        hold = _hold(ep)
        if ep.state == "pending" or not hold:
            self.clear(ep, at, now)
            return
        if ep.clear_candidate_at is None:
            ep.clear_candidate_at = at
            self.changed[ep.id] = ep
        elif at - ep.clear_candidate_at >= hold:
            self.clear(ep, ep.clear_candidate_at + hold, now)


def quiet_held(ep: Episode, now: datetime) -> bool:
    """Is ``ep`` held by the system in a quiet period at ``now`` (in no queue, in front of
    nobody until the quiet period ends and it is renotified)?"""
    return (
        ep.snoozed_until is not None
        and ep.snoozed_until > now
        and (ep.snooze_reason or "").startswith(_QUIET_REASON)
    )


def _rerun(rule_id: str) -> bool:
    """Is this rule run by time (periodic or timed), so that it finds a lasting condition
    again on the scheduler's next pass?"""
    rule = RULES.get(rule_id)
    return rule is not None and (rule.periodic or rule.kind == "timed")


def quiet_ends(book: Book, ctx: PatientContext) -> list[datetime]:
    """When the quiet periods of this book end (the replay clock re-runs the timed rules)."""
    out = []
    for family, (at, _severity, _outcome) in book.quiet.items():
        span = quiet_for(ctx, family)
        if span is not None:
            out.append(at + span)
    return out


def _hold(ep: Episode) -> timedelta:
    """A technical item clears as soon as it is fixed; a clinical one after its family's hold."""
    return timedelta(0) if ep.queue == "technical" else FAMILIES[ep.family].clear_hold


def _late_text(f: Finding, now: datetime) -> str:
    age = now - f.time
    days = age.total_seconds() / 86400
    when = f"{days:.0f} days" if days >= 1.5 else f"{age.total_seconds() / 3600:.0f} hours"
    return f"Late data (measured {when} before it arrived): {f.explanation}"


def _text(f: Finding, now: datetime, late: bool) -> str:
    """The finding's explanation; past its relevance window "Late data (…)", within it but an
    hour or more behind "Late reading (measured 7 h ago, arrived now)"."""
    if late:
        return _late_text(f, now)
    age = now - f.time
    if relevance(f.family) is not None and age >= timedelta(hours=1):
        return f"Late reading (measured {_age(age)} ago, arrived now): {f.explanation}"
    return f.explanation


PERIOD = timedelta(hours=6)  # how often the periodic rules (7-day mean) run


def _rules_for(ctx: PatientContext, type_: str) -> tuple[str, ...]:
    return rules_for(ctx.thresholds.enabled, type_)


@functools.lru_cache(maxsize=1024)
def rules_for(enabled: frozenset[str], type_: str) -> tuple[str, ...]:
    """The per-reading rules (neither timed nor periodic) among ``enabled`` that read
    ``type_``, in the order the engine runs them."""
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
    # per reading type: its rules with their parameters and whether their family is active
    plans: dict[str, list[tuple[Rule, Mapping[str, ThresholdValue], bool]]] = {}
    lookbacks: dict[str, timedelta] = {}  # per rule, computed when first needed
    for r in readings:
        plan = plans.get(r.type)
        if plan is None:
            plan = plans[r.type] = [
                (RULES[rid], ctx.thresholds.rule(rid), RULES[rid].family in book.active)
                for rid in _rules_for(ctx, r.type)
            ]
        if not plan:
            continue
        values = assess(r).values
        for rule, params, active in plan:
            if not rule.wants_history(values, r.flags, params, active):
                continue
            lookback = lookbacks.get(rule.id)
            if lookback is None:
                lookback = lookbacks[rule.id] = rule.lookback(params)
            start = r.time - lookback
            for type_ in rule.types:
                old = needs.get(type_)
                needs[type_] = (
                    (start, r.time) if old is None else (min(old[0], start), max(old[1], r.time))
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
        if verdict is None:
            continue
        ep = book.active.get(rule.family)
        if verdict.finding is None and ep is not None and ep.rule_id != rid:
            continue  # a rule's all-clear speaks only for the episode it speaks for
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
    if book.ctx is None:
        book.ctx = ctx
    # what the rules derive from a parameter set alone, computed once for the patient's
    # readings (each Eval its own when the parameters change with time: postpartum)
    memo: dict[tuple[int, str], tuple[object, Any]] | None = (
        {} if ctx.thresholds.postpartum_end is None else None
    )
    for r in sorted(readings, key=lambda r: (r.time, r.reading_id.int)):
        if r.reading_id in history:
            continue  # a duplicate never raises anything new
        if book.active:
            advance(ctx, book, r.time, now)
        quality = assess(r)
        point = history.add(r, quality)
        ev = Eval(r, point, history, ctx.thresholds, ctx.tz, r.time, active=book.active, memo=memo)
        by_family: dict[str, list[Verdict]] = {}
        for rid in _rules_for(ctx, r.type):
            rule = RULES[rid]
            ev.params = ctx.thresholds.rule(rid)
            verdict = rule.evaluate(ev)
            if verdict is not None:
                by_family.setdefault(rule.family, []).append(verdict)
        for family, verdicts in by_family.items():
            subject = r.device_id if family in _PER_DEVICE else None
            book.on_verdicts(ctx, family, verdicts, r.time, now, r.reading_id, subject)
        missing = book.active.get("missing_data")
        if missing is not None and _fills_gap(missing, r):
            book.clear(missing, r.time, now)
    advance(ctx, book, now, now)


def _fills_gap(ep: Episode, r: StoredReading) -> bool:
    """Does this reading end the missing-data episode? Any reading ends "no readings at all";
    only a reading of the missing type ends a per-type one (BP does not replace a weight)."""
    if "control_solution" in r.flags or r.type in REPORT_TYPES:
        return False
    rule = RULES.get(ep.rule_id)
    return rule is None or rule.kind != "missing_type" or r.type in rule.types


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
    if book.ctx is None:
        book.ctx = ctx
    for ep in list(book.active.values()):
        if (
            ep.confirm_by is not None
            and ep.confirm_by <= until
            and (
                now >= _arrival_deadline(ep)
                # a reading measured after the window is being processed (late uploads are taken
                # in clinical order): any re-measure within the window came before it
                or ep.confirm_by < until < now
            )
        ):
            if ep.state == "pending":
                _open_unconfirmed(ctx, book, ep, now)
            else:
                # a new single value inside a handled episode, and no re-measure came
                book.renotify(ep, now, "no re-measure came", ctx=ctx)
        elif (
            ep.clear_candidate_at is not None
            and ep.cleared_at is None
            and ep.clear_candidate_at + _hold(ep) <= until
        ):
            book.clear(ep, ep.clear_candidate_at + _hold(ep), now)
    if facts is not None:
        _timed_rules(ctx, book, until, now, facts)
    if escalate:
        for ep in list(book.active.values()):
            if ep.snoozed_until is not None and ep.snoozed_until <= now:
                held = quiet_held(ep, ep.snoozed_until - timedelta(microseconds=1))
                ep.snoozed_until = None
                ep.snooze_reason = None
                book._event(ep, now, "snooze_expired", ep.state)
                if held and ep.cleared_at is not None and ep.state == "open":
                    book.resolve(ep, now, "auto_cleared")  # over before its quiet period ended
                elif ep.state == "open" and ep.suppressed_by is None and ep.queue == "clinical":
                    book.renotify(ep, now, "snooze ended", ctx=ctx)
            if (
                ep.state == "open"
                and ep.queue == "clinical"
                and ep.suppressed_by is None
                and ep.snoozed_until is None
                and ep.sla_due_at is not None
                and ep.sla_due_at <= now
                and ep.escalation_level < max_escalation(ep.priority)
            ):
                ep.escalation_level += 1
                ep.sla_due_at = now + sla_for(ctx, ep.priority)
                book._event(
                    ep,
                    now,
                    "escalated",
                    ep.state,
                    {"to": ep.escalation_role, "level": ep.escalation_level},
                )


def timers(book: Book) -> list[datetime]:
    """When time alone next changes this book: confirmation deadlines, ends of hold times and
    snoozes, SLA due times (the scheduler's work, for a replay clock)."""
    out: list[datetime] = []
    for ep in book.active.values():
        if ep.confirm_by is not None:
            out.append(max(ep.confirm_by, _arrival_deadline(ep)))
        if ep.clear_candidate_at is not None and ep.cleared_at is None:
            out.append(ep.clear_candidate_at + _hold(ep))
        if ep.snoozed_until is not None:
            out.append(ep.snoozed_until)
        elif (
            ep.state == "open"
            and ep.queue == "clinical"
            and ep.suppressed_by is None
            and ep.sla_due_at is not None
            and ep.escalation_level < max_escalation(ep.priority)
        ):
            out.append(ep.sla_due_at)
    return out


def _arrival_deadline(ep: Episode) -> datetime:
    """A re-measure may arrive in a later upload than the value it confirms: a pending episode
    waits for the confirmation window in clinical time *and* the same window after the value
    arrived. (A handled episode's ``confirm_by`` already holds both.)"""
    assert ep.confirm_by is not None
    if ep.state != "pending":
        return ep.confirm_by
    return ep.created_at + max(ep.confirm_by - ep.opened_at, timedelta(0))


def _open_unconfirmed(ctx: PatientContext, book: Book, ep: Episode, now: datetime) -> None:
    assert ep.confirm_by is not None
    minutes = (ep.confirm_by - ep.opened_at).total_seconds() / 60
    ep.explanation = ep.explanation.replace(
        f"re-measure requested within {minutes:.0f} min",
        f"no re-measure came within {minutes:.0f} min",
    ).replace(REWEIGH_TEXT, f"one weigh-in, no re-weigh came within {minutes / 60:.0f} h")
    window = relevance(ep.family)
    if window is not None and now - ep.opened_at > window:
        ep.late = True
        ep.priority = max(ep.priority, LATE_PRIORITY)
    book.open_(ep, ctx, now, "no re-measure")


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
        # one technical item per device, cleared when its battery is back above the limit
        limit = ctx.thresholds.rule("battery_low")["percent"].value
        levels: dict[str, float] = {}
        for device, lvl in facts.low_batteries:
            levels[device] = min(lvl, levels.get(device, lvl))
        for device, lvl in sorted(levels.items()):
            ep = book.active.get(f"battery_low@{device}")
            if lvl <= limit and ep is None:
                text = (
                    f"1 device battery level(s) at or below {limit:.0f} % (lowest {lvl:.0f} %); "
                    f"{_source(ctx, 'battery_low', 'percent')}"
                )
                book.on_finding(
                    ctx,
                    _timed_finding(ctx, "battery_low", Severity.INFO, until, lvl, text),
                    now,
                    None,
                    subject=device,
                )
            elif lvl > limit and ep is not None:
                book.clear(ep, until, now)
        for ep in list(book.active.values()):
            if ep.family == "battery_low" and (ep.subject is None or ep.subject not in levels):
                book.clear(ep, until, now)  # no longer reported low (or an item of old)
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
        elif deadline > until and ep is not None and ep.rule_id == "missing_data":
            book.clear(ep, until, now)  # a per-type item clears on its own type only
