"""Replay a cohort through the rule set without a database: what would have opened,
escalated (severity) and cleared. The same engine as the live path (``evaluate_patient`` and
``advance``); each reading is evaluated when it arrived (``received_at``), in clinical-time
order within an arrival, so late data is judged as the live path would judge it.

Cohort file::

    {"patients": [{"id", "program", "risk_tier", "overrides"}],
     "readings": [canonical reading (carebeacon.readings/1) + "patient_id"]}

``program`` names a template (or ``{"id", "template"}``); ``overrides`` is
``{"<rule>.<param>": value}`` or a list of ``{"parameter", "value", "scope"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from alerts._engine import (
    PERIOD,
    Book,
    Event,
    Facts,
    PatientContext,
    advance,
    evaluate_patient,
    evaluate_periodic,
    periodic_rules,
)
from alerts._history import History
from alerts._model import UNTRUSTED_TIME_FLAGS, StoredReading
from alerts._programs import TEMPLATES, Override, resolve_thresholds
from carebeacon.progress import track

__all__ = ["ReplayError", "parse_overrides", "program_overrides", "replay", "to_reading"]

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
    """The cohort file is not usable (names the item, never its values)."""


def _aware(value: str | None) -> datetime | None:
    if value is None:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def to_reading(item: Mapping[str, Any]) -> StoredReading:
    """A canonical reading (+ ``patient_id``) as the live path would have stored it. Clinical
    time: ``time`` if given, else the device clock unless flagged unset/reset, else
    ``received_at``. Values in a known non-canonical unit are converted."""
    try:
        flags = tuple(str(f) for f in item.get("flags") or ())
        received = _aware(item["received_at"])
        assert received is not None
        clinical = _aware(item.get("time"))
        if clinical is None:
            measured = _aware(item.get("measured_at"))
            clinical = (
                measured
                if measured is not None and not UNTRUSTED_TIME_FLAGS.intersection(flags)
                else received
            )
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
        device = item.get("device")
        device_id = device.get("id") if isinstance(device, Mapping) else item.get("device_id")
        return StoredReading(
            reading_id=uuid.UUID(str(item["id"])),
            patient_id=uuid.UUID(str(item["patient_id"])),
            type=str(item["type"]),
            time=clinical,
            received_at=received,
            device_id=str(device_id or "unknown"),
            gateway_id=str(item.get("gateway_id") or "unknown"),
            flags=flags,
            values=values,
        )
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise ReplayError(f"reading {item.get('id')!r} is not a canonical reading") from exc


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


def _record(kind: str, ep: Any, at: datetime) -> dict[str, Any]:
    return {
        "event": kind,
        "at": at.isoformat(),
        "id": str(ep.id),
        "patient_id": str(ep.patient_id),
        "rule": ep.rule_id,
        "family": ep.family,
        "severity": ep.severity.label,
        "priority": ep.priority,
        "late": ep.late,
        "opened_at": ep.opened_at.isoformat(),
        "cleared_at": ep.cleared_at.isoformat() if ep.cleared_at else None,
        "count": ep.count,
        "explanation": ep.explanation,
        "threshold_version": ep.threshold_version,
        "evidence": [str(r) for r in ep.evidence[:20]],
    }


def _emit(book: Book, opened: set[uuid.UUID]) -> Iterator[dict[str, Any]]:
    events: list[Event] = list(book.events)
    eps = book.changed
    for e in events:
        ep = eps.get(e.episode_id)
        if ep is None:
            continue
        if e.kind == "opened":
            opened.add(ep.id)
            yield _record("open", ep, e.at)
        elif e.kind == "severity_raised" and ep.id in opened:
            yield _record("escalate", ep, e.at)
        elif e.kind == "resolved" and ep.id in opened:
            rec = _record("clear", ep, e.at)
            rec["cleared_at"] = (ep.cleared_at or e.at).isoformat()
            rec["outcome"] = ep.outcome
            yield rec
    book.events.clear()
    book.changed.clear()
    book.new.clear()


def _program(p: Mapping[str, Any]) -> tuple[str, str]:
    prog = p.get("program", "general")
    if isinstance(prog, Mapping):
        pid = str(prog.get("id") or prog.get("template") or "general")
        return pid, str(prog.get("template") or pid)
    return str(prog), str(prog)


def replay(
    cohort: Mapping[str, Any],
    *,
    program_overrides: Sequence[Override] = (),
    until: datetime | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every open/escalate/clear the rule set would produce, sorted by time. Duplicate
    deliveries (same reading id) are dropped first, as ingest would. ``progress``: a bar over
    the patients on a terminal (:mod:`carebeacon.progress`)."""
    readings = [to_reading(r) for r in cohort.get("readings", ())]
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
    end = until or (max(r.received_at for r in readings) if readings else datetime.now(UTC))
    by_patient: dict[str, list[int]] = {}
    for pid, idx in zip(frame["patient"].to_list(), frame["i"].to_list(), strict=True):
        by_patient.setdefault(pid, []).append(idx)
    out: list[dict[str, Any]] = []
    patients = cohort.get("patients", ())
    for p in track(
        patients, desc="replay", total=len(patients), unit="patient", quiet=not progress
    ):
        pid = uuid.UUID(str(p["id"]))
        program, template = _program(p)
        if template not in TEMPLATES:
            template = "general"
        overrides = [o for o in program_overrides if o.scope in ("program", "template")]
        overrides = [
            Override("program", o.parameter.split(":", 1)[-1], o.value, o.version_id, o.version)
            for o in overrides
            if ":" not in o.parameter or o.parameter.split(":", 1)[0] in (program, template)
        ]
        overrides += parse_overrides(p.get("overrides"))
        ctx = PatientContext(
            patient_id=pid,
            site_id=p.get("site_id"),
            program_id=program,
            risk_tier=int(p.get("risk_tier", 2)),
            thresholds=resolve_thresholds(program, template, overrides),
        )
        out.extend(_replay_patient(ctx, [readings[i] for i in by_patient.get(str(pid), [])], end))
    out.sort(key=lambda r: (r["at"], r["patient_id"], r["id"]))
    return out


def _replay_patient(
    ctx: PatientContext, readings: Sequence[StoredReading], end: datetime
) -> list[dict[str, Any]]:
    history = History()
    book = Book()
    opened: set[uuid.UUID] = set()
    out: list[dict[str, Any]] = []
    missing = "missing_data" in ctx.thresholds.enabled
    days = (
        timedelta(days=ctx.thresholds.rule("missing_data")["days"].value)
        if missing
        else timedelta(0)
    )

    def missing_until(t: datetime) -> None:
        last = history.last_time
        if missing and last is not None and "missing_data" not in book.active:
            deadline = last + days
            if deadline < t:
                advance(ctx, book, deadline, deadline, Facts(last_reading_at=last))
                out.extend(_emit(book, opened))

    periodic = bool(periodic_rules(ctx))
    next_periodic = _next_boundary(readings[0].received_at) if readings else end

    def periodic_until(t: datetime) -> None:
        nonlocal next_periodic
        while periodic and next_periodic <= t:
            missing_until(next_periodic)
            advance(ctx, book, next_periodic, next_periodic)
            evaluate_periodic(ctx, history, book, next_periodic, next_periodic)
            out.extend(_emit(book, opened))
            next_periodic += PERIOD

    i = 0
    while i < len(readings):
        arrival = readings[i].received_at
        j = i
        while j < len(readings) and readings[j].received_at == arrival:
            j += 1
        periodic_until(arrival)
        missing_until(arrival)
        evaluate_patient(ctx, history, book, readings[i:j], arrival)
        out.extend(_emit(book, opened))
        i = j
    periodic_until(end)
    missing_until(end)
    advance(ctx, book, end, end)
    out.extend(_emit(book, opened))
    return out


def _next_boundary(t: datetime) -> datetime:
    """The first multiple of ``PERIOD`` (from the Unix epoch, UTC) after ``t``: the replay
    runs the periodic rules on the same grid as the scheduler."""
    step = PERIOD.total_seconds()
    return datetime.fromtimestamp((t.timestamp() // step + 1) * step, UTC)
