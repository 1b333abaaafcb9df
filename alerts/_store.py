"""Database I/O for alerts: patient contexts, threshold overrides, episodes, events.

Every function runs in the caller's transaction and never commits or rolls back.
"""

from __future__ import annotations

import dataclasses
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts._engine import (
    QUIET,
    QUIET_BY_PROGRAM,
    Book,
    Episode,
    Event,
    PatientContext,
    thresholds_for,
)
from alerts._model import Severity
from alerts._programs import Override
from alerts._rules import RULES

__all__ = [
    "EPISODE_COLUMNS",
    "episode_from_row",
    "load_active_episodes",
    "load_contexts",
    "load_resolved",
    "load_state",
    "lock_patients",
    "save_book",
]

_LOCK_CLASS = 0x414C5254  # "ALRT"

EPISODE_COLUMNS = (
    "id",
    "patient_id",
    "family",
    "rule_id",
    "state",
    "severity",
    "priority",
    "site_id",
    "program_id",
    "opened_at",
    "last_at",
    "created_at",
    "updated_at",
    "count",
    "value_code",
    "first_value",
    "last_value",
    "worst_value",
    "explanation",
    "evidence",
    "threshold_version",
    "thresholds",
    "late",
    "confirm_by",
    "clear_candidate_at",
    "cleared_at",
    "sla_due_at",
    "escalation_level",
    "assignee",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "outcome",
    "note",
    "snoozed_until",
    "snooze_reason",
    "suppressed_by",
    "queue",
    "subject",
    "notified_at",
    "handled_at",
    "renotify_count",
)
_COLS = ", ".join(EPISODE_COLUMNS)
_INSERT = (
    f"INSERT INTO alert_episodes ({_COLS}) VALUES ("
    + ", ".join(f"%({c})s" for c in EPISODE_COLUMNS)
    + ")"
)
_UPDATE = (
    "UPDATE alert_episodes SET "
    + ", ".join(f"{c} = %({c})s" for c in EPISODE_COLUMNS if c not in ("id", "patient_id"))
    + " WHERE id = %(id)s"
)
_INSERT_EVENT = (
    "INSERT INTO alert_episode_events (episode_id, at, kind, actor, from_state, to_state, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_SEVERITY = {s.label: s for s in Severity}


def patient_lock_key(patient_id: uuid.UUID) -> int:
    return int.from_bytes(patient_id.bytes[:4], "big", signed=True)


async def lock_patients(conn: psycopg.AsyncConnection[Any], patients: Iterable[uuid.UUID]) -> None:
    """Serialise alert evaluation per patient (ingest processes, the scheduler) until the end
    of the caller's transaction. Keys are taken in ascending order: no lock-order deadlock."""
    keys = sorted({patient_lock_key(p) for p in patients})
    if keys:
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int4[]) AS k",
            (_LOCK_CLASS, keys),
        )


def episode_from_row(row: dict[str, Any]) -> Episode:
    values = dict(row)
    values["severity"] = _SEVERITY[row["severity"]]
    values["evidence"] = list(row["evidence"] or [])
    values["thresholds"] = dict(row["thresholds"] or {})
    return Episode(**{c: values[c] for c in EPISODE_COLUMNS})


def episode_params(ep: Episode) -> dict[str, Any]:
    row = {c: getattr(ep, c) for c in EPISODE_COLUMNS}
    row["severity"] = ep.severity.label
    row["thresholds"] = Jsonb(ep.thresholds)
    # up to 200 ids, written at every change: one uuid[] literal (psycopg's list dumper checks
    # each element for quoting, several times slower; the server parses the literal)
    row["evidence"] = "{" + ",".join([f"{rid.int:032x}" for rid in ep.evidence]) + "}"
    return row


async def load_active_episodes(
    conn: psycopg.AsyncConnection[Any], patients: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Episode]]:
    out: dict[uuid.UUID, list[Episode]] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLS} FROM alert_episodes"
            " WHERE patient_id = ANY(%s) AND state <> 'resolved' FOR UPDATE",
            (list(patients),),
        )
        async for row in cur:
            ep = episode_from_row(row)
            out.setdefault(ep.patient_id, []).append(ep)
    return out


def _ids(patients: Iterable[uuid.UUID]) -> str:
    """The patients as one ``uuid[]`` literal: dumped once, however many queries of a round
    trip take it (psycopg dumps a list parameter element by element for each query)."""
    return "{" + ",".join(map(str, patients)) + "}"


def _tz(name: str | None) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name) if name else UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


# Each patient's running enrollments (not ended, consent not withdrawn; consent_state once per
# enrollment): the latest is the primary, all of them give the templates and the delivery date.
_BASE_SQL = """
    WITH running AS MATERIALIZED (
        SELECT e.patient_id, e.program_id, e.site_id, e.enrolled_at, pr.template,
               -- the postpartum delivery date, where enrollments carry one
               (to_jsonb(e) ->> 'delivery_date')::date AS delivery_date
        FROM enrollments e
        LEFT JOIN programs pr ON pr.id = e.program_id
        WHERE e.patient_id = ANY(%(ids)s::uuid[])
          AND (e.ended_at IS NULL OR e.ended_at > %(now)s)
          AND consent_state(e.id, %(now)s) IS DISTINCT FROM 'withdrawn'
    ), every AS (
        SELECT patient_id,
               array_agg(DISTINCT template) FILTER (WHERE template IS NOT NULL) AS templates,
               max(delivery_date) AS delivery_date
        FROM running GROUP BY patient_id
    )
    SELECT DISTINCT ON (p.id) p.id, p.risk_tier, coalesce(r.site_id, p.site_id),
           r.program_id, coalesce(r.template, 'general'), s.timezone,
           a.templates, a.delivery_date
    FROM patients p
    LEFT JOIN running r ON r.patient_id = p.id
    LEFT JOIN every a ON a.patient_id = p.id
    LEFT JOIN sites s ON s.id = coalesce(r.site_id, p.site_id)
    WHERE p.id = ANY(%(ids)s::uuid[])
    ORDER BY p.id, r.enrolled_at DESC NULLS LAST
"""
# Every override that may apply to these patients (their own, their sites', their programs');
# independent of the query above so that both go in one round trip.
_THRESHOLDS_SQL = """
    SELECT scope, program_id, site_id, patient_id, parameter, value, id, version,
           ordered_by, reason, valid_from, valid_until
    FROM alert_thresholds
    WHERE valid_from <= %(now)s AND (valid_until IS NULL OR valid_until > %(now)s)
      AND ((scope = 'patient' AND patient_id = ANY(%(ids)s::uuid[]))
        OR (scope = 'program' AND program_id IN (
                SELECT program_id FROM enrollments WHERE patient_id = ANY(%(ids)s::uuid[])))
        OR (scope = 'site' AND site_id IN (
                SELECT site_id FROM enrollments WHERE patient_id = ANY(%(ids)s::uuid[])
                UNION SELECT site_id FROM patients WHERE id = ANY(%(ids)s::uuid[]))))
    ORDER BY scope, (program_id IS NOT NULL), version
"""


def _contexts(
    base: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]
) -> dict[uuid.UUID, PatientContext]:
    # the highest version per (scope, key, parameter) wins; rows arrive by ascending version
    latest: dict[tuple[Any, ...], Override] = {}
    for r in rows:
        key = (r[0], r[1], r[2], r[3], r[4])
        latest[key] = Override(
            scope=r[0],
            parameter=r[4],
            value=r[5],
            version_id=r[6],
            version=r[7],
            ordered_by=r[8],
            reason=r[9],
            valid_from=r[10],
            valid_until=r[11],
        )
    out: dict[uuid.UUID, PatientContext] = {}
    for pid, tier, site, program, template, tzname, templates, delivery in base:
        mine = [
            o
            for (scope, o_prog, o_site, o_patient, _), o in latest.items()
            if (scope == "program" and o_prog == program)
            or (scope == "site" and o_site == site and o_prog in (None, program))
            or (scope == "patient" and o_patient == pid)
        ]
        out[pid] = PatientContext(
            patient_id=pid,
            site_id=site,
            program_id=program,
            risk_tier=int(tier),
            thresholds=thresholds_for(
                program or template,
                template,
                mine,
                also=tuple(sorted(set(templates or ()) - {template})),
                delivery_date=delivery,
            ),
            tz=_tz(tzname),
            templates=tuple(sorted(set(templates or ()) | {template})),
            delivery_date=delivery,
        )
    return out


# The latest episode per (patient, family) resolved by a person, within the longest quiet period:
# a new episode of that family is held quiet (alerts._engine.QUIET).
_RESOLVED_SQL = f"""
    SELECT DISTINCT ON (patient_id, family) {_COLS} FROM alert_episodes
    WHERE patient_id = ANY(%(ids)s::uuid[])
      AND state = 'resolved' AND resolved_by <> 'system'
      AND resolved_at > %(now)s - make_interval(days => %(quiet_days)s)
    ORDER BY patient_id, family, resolved_at DESC
"""


def _quiet_days() -> int:
    longest = max([*QUIET.values(), *(d for m in QUIET_BY_PROGRAM.values() for d in m.values())])
    return longest.days + 1


async def load_resolved(
    conn: psycopg.AsyncConnection[Any], patients: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, list[Episode]]:
    """Per patient, the latest person-resolved episode of each family (for the quiet period)."""
    out: dict[uuid.UUID, list[Episode]] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _RESOLVED_SQL, {"ids": _ids(patients), "now": now, "quiet_days": _quiet_days()}
        )
        for row in await cur.fetchall():
            ep = episode_from_row(row)
            out.setdefault(ep.patient_id, []).append(ep)
    return out


async def load_contexts(
    conn: psycopg.AsyncConnection[Any], patients: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, PatientContext]:
    """Each patient's current enrollment (latest one still running), program template, site
    time zone, risk tier and effective thresholds. A patient with no running enrollment gets
    the ``general`` template at their own site."""
    params = {"ids": _ids(patients), "now": now}
    async with conn.cursor() as cur:
        await cur.execute(_BASE_SQL, params)
        base = await cur.fetchall()
        await cur.execute(_THRESHOLDS_SQL, params)
        rows = await cur.fetchall()
    return _contexts(base, rows)


async def load_state(
    conn: psycopg.AsyncConnection[Any], patients: Sequence[uuid.UUID], now: datetime
) -> tuple[
    dict[uuid.UUID, PatientContext],
    dict[uuid.UUID, list[Episode]],
    dict[uuid.UUID, list[Episode]],
]:
    """In one round trip (pipeline): lock the patients, load their contexts and thresholds,
    their active episodes ``FOR UPDATE`` and their latest person-resolved ones (quiet)."""
    params = {"ids": _ids(patients), "now": now, "quiet_days": _quiet_days()}
    keys = sorted({patient_lock_key(p) for p in patients})
    async with conn.pipeline() as pipe:
        lock = conn.cursor()
        await lock.execute(
            "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int4[]) AS k",
            (_LOCK_CLASS, keys),
        )
        base_cur = conn.cursor()
        await base_cur.execute(_BASE_SQL, params)
        th_cur = conn.cursor()
        await th_cur.execute(_THRESHOLDS_SQL, params)
        # binary: an episode carries up to 200 evidence ids, parsed from text several times
        # slower (the same Python values either way)
        ep_cur = conn.cursor(row_factory=dict_row, binary=True)
        await ep_cur.execute(
            f"SELECT {_COLS} FROM alert_episodes"
            " WHERE patient_id = ANY(%(ids)s::uuid[]) AND state <> 'resolved' FOR UPDATE",
            params,
        )
        res_cur = conn.cursor(row_factory=dict_row, binary=True)
        await res_cur.execute(_RESOLVED_SQL, params)
        await pipe.sync()
        base = await base_cur.fetchall()
        rows = await th_cur.fetchall()
        episodes: dict[uuid.UUID, list[Episode]] = {}
        for row in await ep_cur.fetchall():
            ep = episode_from_row(row)
            episodes.setdefault(ep.patient_id, []).append(ep)
        resolved: dict[uuid.UUID, list[Episode]] = {}
        for row in await res_cur.fetchall():
            ep = episode_from_row(row)
            resolved.setdefault(ep.patient_id, []).append(ep)
    return _contexts(base, rows), episodes, resolved


async def _free_ids(conn: psycopg.AsyncConnection[Any], books: Sequence[Book]) -> None:
    """A new episode's id derives from what opened it (patient, family, subject, the reading or
    the finding's time), and the same evidence can open a second episode after a person
    resolved the first (a quiet period ends while a trend window or a data gap still starts at
    the same point). That second episode takes the next free id of the same derivation, so
    that it is stored instead of failing the whole transaction (which would stop the scheduler,
    or quarantine the reading in ingest)."""
    fresh = {ep.id: book for book in books for ep in book.changed.values() if ep.id in book.new}
    if not fresh:
        return
    cur = await conn.execute("SELECT id FROM alert_episodes WHERE id = ANY(%s)", (list(fresh),))
    for (taken,) in await cur.fetchall():
        book = fresh[taken]
        n = 1
        while True:
            candidate = uuid.uuid5(taken, str(n))
            cur = await conn.execute("SELECT 1 FROM alert_episodes WHERE id = %s", (candidate,))
            if candidate not in fresh and await cur.fetchone() is None:
                break
            n += 1
        ep = book.changed.pop(taken)
        ep.id = candidate
        book.changed[candidate] = ep
        book.new.discard(taken)
        book.new.add(candidate)
        book.events[:] = [
            dataclasses.replace(e, episode_id=candidate) if e.episode_id == taken else e
            for e in book.events
        ]


async def save_book(conn: psycopg.AsyncConnection[Any], books: Iterable[Book]) -> list[Event]:
    """Write what changed: updates of existing episodes first (a resolve frees the one-active
    slot), then new episodes, then the events. Returns the events written."""
    books = list(books)
    await _free_ids(conn, books)
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    events: list[Event] = []
    for book in books:
        for ep in book.changed.values():
            (inserts if ep.id in book.new else updates).append(episode_params(ep))
        events.extend(book.events)
    async with conn.pipeline(), conn.cursor() as cur:
        if updates:
            await cur.executemany(_UPDATE, updates)
        if inserts:
            await cur.executemany(_INSERT, inserts)
        if events:
            await cur.executemany(
                _INSERT_EVENT,
                [
                    (e.episode_id, e.at, e.kind, e.actor, e.from_state, e.to_state, Jsonb(e.detail))
                    for e in events
                ],
            )
    return events


def rule_ids() -> frozenset[str]:
    return frozenset(RULES)
