"""Replay a cohort through the rule set without a database: what would have opened,
escalated (severity) and cleared. The same engine as the live path (``evaluate_patient`` and
``advance``); each reading is evaluated when it arrived (``received_at``), in clinical-time
order within an arrival, so late data is judged as the live path would judge it.

Between arrivals, what time alone decides runs as the scheduler would run it: confirmation
deadlines, hold times, missing data, the 7-day mean every ``PERIOD``, snooze expiry and SLA
escalation. Cohort file::

    {"patients": [{"id", "program", "programs"?, "delivery_date"?, "timezone"?, "risk_tier"?,
                   "site_id"?, "overrides"?}],
     "readings": [canonical reading (carebeacon.readings/1) + "patient_id"],
     "actions"?: [{"at", "patient_id", "action": "acknowledge" | "claim" | "snooze" | "resolve",
                   "minutes"?, "outcome"?, "note"?}],
     "symptoms"?: [{"at", "patient_id", "symptoms": [name, ...], "received_at"?}]}

``program`` names a template (or ``{"id", "template"}``); ``programs`` lists every running
enrollment (the first is primary when ``program`` is absent); ``overrides`` is
``{"<rule>.<param>": value}`` or a list of ``{"parameter", "value", "scope"}``. Patient (and
reading) ids are any strings. A symptom report is evaluated as a reading of type ``symptom``
(the rules decide what it means). An action applies to every active episode of the patient at its
time that is in front of a person (not pending, not held in a quiet period), as a person would
through the web app (``snooze`` needs ``minutes``, capped at the
severity's ``SNOOZE_MAX`` and skipped for critical episodes; ``resolve`` needs an outcome
people choose). A bad cohort raises :class:`ReplayError` naming the field at fault.

Output: one JSON object per event, sorted by time: ``event`` (open, escalate = severity rose,
renotify, sla_escalate, clear, acknowledge, claim, snooze, suppressed), ``kind`` (the engine's
event kind), ``queue`` (clinical | technical) and ``notify`` (the event put the episode in
front of a person with a new SLA: ``NOTIFYING_EVENTS``), with the episode's state.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from alerts._batch import prefilter_enabled, quiet_mask, settled
from alerts._engine import (
    ESCALATION_LEVELS,
    PERIOD,
    PERSON_OUTCOMES,
    SNOOZE_MAX,
    ActionError,
    Book,
    Episode,
    Event,
    Facts,
    PatientContext,
    advance,
    evaluate_patient,
    evaluate_periodic,
    periodic_rules,
    quiet_ends,
    quiet_held,
    thresholds_for,
    timers,
)
from alerts._history import History
from alerts._model import UNTRUSTED_TIME_FLAGS, StoredReading
from alerts._programs import TEMPLATES, Override
from alerts._symptoms import symptom_reading
from alerts.errors import InvalidSymptoms
from carebeacon.progress import track

__all__ = [
    "ACTIONS",
    "Action",
    "ReplayError",
    "as_uuid",
    "parse_actions",
    "parse_overrides",
    "parse_symptoms",
    "program_overrides",
    "replay",
    "to_reading",
]

# Cohort files may carry a device's own unit; the factors are the ARCHITECTURE.md ones.
_TO_CANONICAL: Mapping[tuple[str, str], float] = {
    ("glucose", "mmol/L"): 18.016,
    ("glucose", "kg/L"): 100_000.0,
    ("body_weight", "[lb_av]"): 0.45359237,
    ("body_weight", "lb"): 0.45359237,
    ("systolic", "kPa"): 7.50062,
    ("diastolic", "kPa"): 7.50062,
    ("mean_arterial", "kPa"): 7.50062,
}


class ReplayError(ValueError):
    """The cohort file is not usable (names the item and field, never its values)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


_IDS = uuid.UUID("0b7e4f3c-52a1-4c7d-9f0e-2d6a8c1b5e90")
ACTIONS = ("acknowledge", "claim", "snooze", "resolve")
_ACTOR = "replay"


def as_uuid(value: Any) -> uuid.UUID:
    """A cohort id as a UUID: itself if it is one, else a stable UUID named by the string."""
    text = str(value)
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(_IDS, text)


def _aware(value: str | None) -> datetime | None:
    if value is None:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def to_reading(item: Mapping[str, Any], where: str = "reading") -> StoredReading:
    """A canonical reading (+ ``patient_id``) as the live path would have stored it. Clinical
    time: ``time`` if given, else the device clock unless flagged unset/reset, else
    ``received_at``. Values in a known non-canonical unit are converted."""
    field = "id"
    try:
        if not isinstance(item, Mapping):
            raise TypeError("not an object")
        for field in ("id", "patient_id", "type", "received_at"):
            if item.get(field) in (None, ""):
                raise KeyError(field)
        field = "flags"
        flags = tuple(str(f) for f in item.get("flags") or ())
        field = "received_at"
        received = _aware(item["received_at"])
        assert received is not None
        field = "time"
        clinical = _aware(item.get("time"))
        if clinical is None:
            field = "measured_at"
            measured = _aware(item.get("measured_at"))
            clinical = (
                measured
                if measured is not None and not UNTRUSTED_TIME_FLAGS.intersection(flags)
                else received
            )
        field = "values"
        values: dict[str, float] = {}
        raw_values = item.get("values") or []
        pairs: Iterable[tuple[str, Any, str | None]] = (
            ((k, v, None) for k, v in raw_values.items())
            if isinstance(raw_values, Mapping)
            else ((v["code"], v["value"], v.get("unit")) for v in raw_values)
        )
        for code, value, unit in pairs:
            if value is None:
                continue
            factor = _TO_CANONICAL.get((code, unit or ""), 1.0)
            values[str(code)] = float(value) * factor
        field = "device"
        device = item.get("device")
        device_id = device.get("id") if isinstance(device, Mapping) else item.get("device_id")
        return StoredReading(
            reading_id=as_uuid(item["id"]),
            patient_id=as_uuid(item["patient_id"]),
            type=str(item["type"]),
            time=clinical,
            received_at=received,
            device_id=str(device_id or "unknown"),
            gateway_id=str(item.get("gateway_id") or "unknown"),
            flags=flags,
            values=values,
        )
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as exc:
        ident = item.get("id") if isinstance(item, Mapping) else None
        raise ReplayError(
            f"{where}.{field} (id {ident!r}) is missing or invalid: not a canonical reading",
            f"{where}.{field}",
        ) from exc


def parse_overrides(raw: Any, scope: str = "patient") -> list[Override]:
    if not raw:
        return []
    if isinstance(raw, Mapping):
        items: list[Mapping[str, Any]] = [{"parameter": k, "value": v} for k, v in raw.items()]
    else:
        items = list(raw)
    out = []
    for n, o in enumerate(items, 1):
        value = o.get("value")
        if value is not None and not isinstance(value, int | float):
            raise ReplayError(f"override {o.get('parameter')!r}: value is not a number", "value")
        out.append(
            Override(
                scope=str(o.get("scope", scope)),
                parameter=str(o["parameter"]),
                value=None if value is None else float(value),
                version_id=-n,
                version=n,
                ordered_by=o.get("ordered_by"),
                reason=o.get("reason"),
            )
        )
    return out


def program_overrides(pairs: Sequence[str]) -> list[Override]:
    """Program-wide changes from ``[PROGRAM:]RULE.PARAM=VALUE`` strings (the CLI's ``--set``)."""
    out = []
    for n, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ReplayError(f"--set needs PARAM=VALUE, got {pair!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise ReplayError(f"--set {key.strip()}: {value!r} is not a number") from exc
        out.append(Override("program", key.strip(), number, -1000 - n, 1000 + n))
    return out


_LINE = {
    "opened": "open",
    "severity_raised": "escalate",
    "renotified": "renotify",
    "escalated": "sla_escalate",
    "resolved": "clear",
    "acknowledged": "acknowledge",
    "assigned": "claim",
    "snoozed": "snooze",
    "suppressed": "suppressed",
}


def _record(kind: str, ep: Episode, e: Event, names: Mapping[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "event": kind,
        "kind": e.kind,
        "at": e.at.isoformat(),
        "id": str(ep.id),
        "patient_id": names.get(ep.patient_id, str(ep.patient_id)),
        "rule": ep.rule_id,
        "family": ep.family,
        "queue": ep.queue,
        "notify": bool(e.detail.get("notify", False)),
        "severity": ep.severity.label,
        "priority": ep.priority,
        "state": e.to_state,
        "late": ep.late,
        "opened_at": ep.opened_at.isoformat(),
        "cleared_at": ep.cleared_at.isoformat() if ep.cleared_at else None,
        "sla_due_at": ep.sla_due_at.isoformat() if ep.sla_due_at else None,
        "escalation": ESCALATION_LEVELS[min(ep.escalation_level, len(ESCALATION_LEVELS) - 1)],
        "actor": e.actor,
        "count": ep.count,
        "explanation": ep.explanation,
        "threshold_version": ep.threshold_version,
        "evidence": [names.get(r, str(r)) for r in ep.evidence[:20]],
    }


def _emit(
    book: Book, opened: set[uuid.UUID], names: Mapping[uuid.UUID, str]
) -> Iterator[dict[str, Any]]:
    events: list[Event] = list(book.events)
    eps = book.changed
    opened.update(e.episode_id for e in events if e.kind == "opened")
    for e in events:
        ep = eps.get(e.episode_id)
        line = _LINE.get(e.kind)
        if ep is None or line is None:
            continue
        if ep.id not in opened:
            continue  # a pending episode: not in front of anyone yet
        rec = _record(line, ep, e, names)
        if e.kind == "resolved":
            rec["cleared_at"] = (ep.cleared_at or e.at).isoformat()
            rec["outcome"] = e.detail.get("outcome", ep.outcome)
        elif e.kind in ("severity_raised", "renotified"):
            rec["reason"] = e.detail.get("reason") or e.detail.get("to")
        yield rec
    book.events.clear()
    book.changed.clear()
    book.new.clear()


def _program(p: Mapping[str, Any]) -> tuple[str, str]:
    prog = p.get("program")
    if prog is None:
        progs = p.get("programs") or ["general"]
        prog = progs[0]
    if isinstance(prog, Mapping):
        pid = str(prog.get("id") or prog.get("template") or "general")
        return pid, str(prog.get("template") or pid)
    return str(prog), str(prog)


def _bad(where: str, detail: str) -> ReplayError:
    return ReplayError(f"{where}: {detail}", where)


def _context(n: int, p: Any, program_overrides: Sequence[Override]) -> tuple[PatientContext, str]:
    where = f"patients[{n}]"
    if not isinstance(p, Mapping):
        raise _bad(where, "not an object")
    if p.get("id") in (None, ""):
        raise _bad(f"{where}.id", "missing")
    name = str(p["id"])
    pid = as_uuid(name)
    try:
        program, template = _program(p)
    except (TypeError, IndexError, AttributeError) as exc:
        raise _bad(f"{where}.program", "not a program name") from exc
    if template not in TEMPLATES:
        template = "general"
    programs_raw = p.get("programs") or []
    if not isinstance(programs_raw, list) or not all(isinstance(x, str) for x in programs_raw):
        raise _bad(f"{where}.programs", "must be a list of program names")
    also = tuple(sorted({t for t in programs_raw if t in TEMPLATES} - {template}))
    tier = p.get("risk_tier", 2)
    if tier not in (1, 2, 3) or isinstance(tier, bool):
        raise _bad(f"{where}.risk_tier", "must be 1, 2 or 3")
    delivery: date | None = None
    if p.get("delivery_date") is not None:
        try:
            delivery = date.fromisoformat(str(p["delivery_date"]))
        except ValueError as exc:
            raise _bad(f"{where}.delivery_date", "must be YYYY-MM-DD") from exc
    tz: tzinfo = UTC
    if p.get("timezone"):
        try:
            tz = zoneinfo.ZoneInfo(str(p["timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise _bad(f"{where}.timezone", "not an IANA time zone") from exc
    overrides = [o for o in program_overrides if o.scope in ("program", "template")]
    overrides = [
        Override("program", o.parameter.split(":", 1)[-1], o.value, o.version_id, o.version)
        for o in overrides
        if ":" not in o.parameter or o.parameter.split(":", 1)[0] in (program, template)
    ]
    try:
        overrides += parse_overrides(p.get("overrides"))
    except (ReplayError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _bad(f"{where}.overrides", "not a list/object of parameter values") from exc
    ctx = PatientContext(
        patient_id=pid,
        site_id=p.get("site_id"),
        program_id=program,
        risk_tier=int(tier),
        thresholds=thresholds_for(program, template, overrides, also=also, delivery_date=delivery),
        tz=tz,
        templates=tuple(dict.fromkeys((template, *also))),
        delivery_date=delivery,
    )
    return ctx, name


@dataclass(frozen=True, slots=True)
class Action:
    at: datetime
    patient_id: uuid.UUID
    action: str
    minutes: float | None = None
    outcome: str | None = None
    note: str | None = None


def _timed_items(raw: Any, name: str) -> Iterator[tuple[str, Mapping[str, Any], datetime]]:
    """The items of the cohort's list ``name`` (``actions``, ``symptoms``), each an object with
    an aware ``at`` and a ``patient_id``: ``(where, item, at)``, errors naming ``name[i].field``."""
    if raw is None:
        return
    if not isinstance(raw, list):
        raise _bad(name, "must be a list")
    for n, item in enumerate(raw):
        where = f"{name}[{n}]"
        if not isinstance(item, Mapping):
            raise _bad(where, "not an object")
        try:
            at = _aware(str(item["at"]))
        except (KeyError, ValueError) as exc:
            raise _bad(f"{where}.at", "missing or not an ISO 8601 time") from exc
        assert at is not None
        if item.get("patient_id") in (None, ""):
            raise _bad(f"{where}.patient_id", "missing")
        yield where, item, at


def parse_actions(raw: Any) -> list[Action]:
    """The cohort's ``actions``, validated (errors name ``actions[i].<field>``)."""
    out: list[Action] = []
    for where, a, at in _timed_items(raw, "actions"):
        action = a.get("action")
        if action not in ACTIONS:
            raise _bad(f"{where}.action", f"must be one of {', '.join(ACTIONS)}")
        minutes = a.get("minutes")
        if action == "snooze" and (
            not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0
        ):
            raise _bad(f"{where}.minutes", "a snooze needs minutes > 0")
        outcome = a.get("outcome")
        if action == "resolve" and outcome not in PERSON_OUTCOMES:
            raise _bad(f"{where}.outcome", "a resolve needs an outcome people choose")
        note = a.get("note")
        if note is not None and not isinstance(note, str):
            raise _bad(f"{where}.note", "must be text")
        out.append(
            Action(
                at,
                as_uuid(a["patient_id"]),
                str(action),
                float(minutes) if isinstance(minutes, int | float) else None,
                str(outcome) if outcome is not None else None,
                note,
            )
        )
    return out


def parse_symptoms(raw: Any) -> list[StoredReading]:
    """The cohort's ``symptoms`` (``[{"at", "patient_id", "symptoms": [...], "received_at"?}]``)
    as the readings the rules see: type ``symptom``, one value 1.0 per symptom named."""
    out: list[StoredReading] = []
    for where, item, at in _timed_items(raw, "symptoms"):
        try:
            received = _aware(item.get("received_at")) or at
        except ValueError as exc:
            raise _bad(f"{where}.received_at", "not an ISO 8601 time") from exc
        names = item.get("symptoms")
        if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
            raise _bad(f"{where}.symptoms", "must be a non-empty list of symptom names")
        patient = as_uuid(item["patient_id"])
        rid = item.get("id") or f"{patient}/{at.isoformat()}/{','.join(names)}"
        try:
            reading = symptom_reading(
                patient, at, names, received_at=received, report_id=as_uuid(rid)
            )
        except InvalidSymptoms as exc:
            raise _bad(f"{where}.{exc.field}", exc.detail) from exc
        out.append(reading)
    return out


def replay(
    cohort: Mapping[str, Any],
    *,
    program_overrides: Sequence[Override] = (),
    until: datetime | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every event the rule set and the actions would produce, sorted by time. Duplicate
    deliveries (same reading id) are dropped first, as ingest would. ``progress``: a bar over
    the patients on a terminal (:mod:`carebeacon.progress`)."""
    if not isinstance(cohort, Mapping):
        raise _bad("cohort", "not an object")
    raw_readings = cohort.get("readings") or []
    if not isinstance(raw_readings, list):
        raise _bad("readings", "must be a list")
    readings = [to_reading(r, f"readings[{n}]") for n, r in enumerate(raw_readings)]
    actions = parse_actions(cohort.get("actions"))
    names: dict[uuid.UUID, str] = {}
    for item, r in zip(raw_readings, readings, strict=True):
        names[r.reading_id] = str(item["id"])
    readings += parse_symptoms(cohort.get("symptoms"))
    import polars as pl  # here: the live path (ingest, scheduler) never loads polars (~25 MB)

    frame = pl.DataFrame(
        {
            "i": list(range(len(readings))),
            "id": [str(r.reading_id) for r in readings],
            "patient": [str(r.patient_id) for r in readings],
            "received": [r.received_at for r in readings],
            "time": [r.time for r in readings],
        },
        schema={
            "i": pl.Int64,
            "id": pl.String,
            "patient": pl.String,
            "received": pl.Datetime("us", "UTC"),
            "time": pl.Datetime("us", "UTC"),
        },
    )
    frame = frame.sort(["received", "i"]).unique(subset="id", keep="first", maintain_order=True)
    frame = frame.sort(["patient", "received", "time", "id"])
    ends = [r.received_at for r in readings] + [a.at for a in actions]
    end = until or (max(ends) if ends else datetime.now(UTC))
    by_patient: dict[str, list[int]] = {}
    for pid, idx in zip(frame["patient"].to_list(), frame["i"].to_list(), strict=True):
        by_patient.setdefault(pid, []).append(idx)
    acts: dict[uuid.UUID, list[Action]] = {}
    for a in sorted(actions, key=lambda a: a.at):
        acts.setdefault(a.patient_id, []).append(a)
    patients = cohort.get("patients") or []
    if not isinstance(patients, list):
        raise _bad("patients", "must be a list")
    out: list[dict[str, Any]] = []
    for n, p in enumerate(
        track(patients, desc="replay", total=len(patients), unit="patient", quiet=not progress)
    ):
        ctx, name = _context(n, p, program_overrides)
        names[ctx.patient_id] = name
        mine = [readings[i] for i in by_patient.get(str(ctx.patient_id), [])]
        out.extend(_replay_patient(ctx, mine, acts.get(ctx.patient_id, []), end, names))
    out.sort(key=lambda r: (r["at"], r["patient_id"], r["id"]))
    return out


def _apply(book: Book, a: Action) -> None:
    """A person's action on every active episode of the patient (see the module docstring);
    a pending episode (a value waiting for its re-measure) and one held in a quiet period are
    in front of nobody (in no queue) yet."""
    for ep in list(book.active.values()):
        if ep.state == "pending" or quiet_held(ep, a.at):
            continue
        try:
            if a.action == "acknowledge" and ep.state in ("pending", "open"):
                book.acknowledge(ep, a.at, _ACTOR, a.note)
            elif a.action == "claim":
                book.claim(ep, a.at, _ACTOR, _ACTOR)
            elif a.action == "snooze" and ep.state in ("open", "acknowledged"):
                limit = SNOOZE_MAX[ep.severity]
                if limit is None:
                    continue  # a critical episode cannot be snoozed
                span = min(timedelta(minutes=a.minutes or 0), limit)
                book.snooze(ep, a.at, _ACTOR, "replay action", a.at + span)
            elif a.action == "resolve":
                book.resolve_by(ep, a.at, _ACTOR, a.outcome, a.note, require_note=False)
        except ActionError:
            continue


def _replay_patient(
    ctx: PatientContext,
    readings: Sequence[StoredReading],
    actions: Sequence[Action],
    end: datetime,
    names: Mapping[uuid.UUID, str],
) -> list[dict[str, Any]]:
    history = History()
    book = Book(ctx=ctx)
    opened: set[uuid.UUID] = set()
    out: list[dict[str, Any]] = []
    missing = "missing_data" in ctx.thresholds.enabled
    days = (
        timedelta(days=ctx.thresholds.rule("missing_data")["days"].value)
        if missing
        else timedelta(0)
    )
    periodic = bool(periodic_rules(ctx))
    # the batch prefilter: readings no rule could find anything in (alerts._batch)
    quiet = quiet_mask(readings, [ctx] * len(readings)) if prefilter_enabled() else None
    start = min([r.received_at for r in readings] + [a.at for a in actions], default=end)
    next_periodic = _next_boundary(start)
    clock = start

    def emit() -> None:
        out.extend(_emit(book, opened, names))

    def missing_deadline() -> datetime | None:
        last = history.last_time
        if missing and last is not None and "missing_data" not in book.active:
            return last + days
        return None

    def run_until(t: datetime, *, inclusive: bool = True) -> None:
        """Everything time alone decides after ``clock`` and up to ``t``, in order."""
        nonlocal clock, next_periodic
        overdue = missing_deadline()
        if overdue is not None and overdue <= clock:
            # resolved by a person while still missing: the scheduler's next pass finds it
            advance(ctx, book, clock, clock, Facts(last_reading_at=history.last_time))
            emit()
        while True:
            due = [x for x in timers(book) + quiet_ends(book, ctx) if x > clock]
            deadline = missing_deadline()
            if deadline is not None and deadline > clock:
                due.append(deadline)
            if periodic:
                due.append(next_periodic)
            nxt = min(due, default=None)
            if nxt is None or nxt > t or (nxt == t and not inclusive):
                break
            clock = nxt
            deadline = missing_deadline()
            if deadline is not None and deadline <= nxt:
                advance(ctx, book, deadline, nxt, Facts(last_reading_at=history.last_time))
            advance(ctx, book, nxt, nxt, escalate=True)
            if periodic and next_periodic <= nxt:
                evaluate_periodic(ctx, history, book, nxt, nxt)
                next_periodic += PERIOD
            emit()

    i = k = 0
    while i < len(readings) or k < len(actions):
        arrival = readings[i].received_at if i < len(readings) else None
        if k < len(actions) and (arrival is None or actions[k].at < arrival):
            a = actions[k]
            run_until(a.at)
            _apply(book, a)
            clock = max(clock, a.at)
            emit()
            k += 1
            continue
        assert arrival is not None
        j = i
        while j < len(readings) and readings[j].received_at == arrival:
            j += 1
        run_until(arrival, inclusive=False)
        group = readings[i:j]
        if (
            quiet is not None
            and quiet[i:j].all()
            and settled(ctx, book.active.values(), {r.type for r in group})
        ):
            for r in group:
                history.add(r)  # what the engine would do with them, and all it would do
        else:
            evaluate_patient(ctx, history, book, group, arrival)
        advance(ctx, book, arrival, arrival, escalate=True)
        clock = max(clock, arrival)
        emit()
        i = j
    run_until(end)
    # a value waiting for its re-measure when the file ends: its deadline still comes
    while pending := [
        deadline
        for ep in book.active.values()
        if ep.confirm_by is not None and (deadline := _confirm_deadline(ep)) > clock
    ]:
        clock = min(pending)
        advance(ctx, book, clock, clock)
        emit()
    return out


def _confirm_deadline(ep: Episode) -> datetime:
    assert ep.confirm_by is not None
    if ep.state != "pending":
        return ep.confirm_by
    return max(ep.confirm_by, ep.created_at + (ep.confirm_by - ep.opened_at))


def _next_boundary(t: datetime) -> datetime:
    """The first multiple of ``PERIOD`` (from the Unix epoch, UTC) after ``t``: the replay
    runs the periodic rules on the same grid as the scheduler."""
    step = PERIOD.total_seconds()
    return datetime.fromtimestamp((t.timestamp() // step + 1) * step, UTC)
