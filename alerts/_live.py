"""The live path: ``evaluate_readings`` inside ingest's transaction."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from alerts._batch import prefilter_enabled, quiet_mask, settled
from alerts._engine import Book, Episode, Event, PatientContext, evaluate_patient, history_needs
from alerts._history import History
from alerts._metrics import EVALUATE_SECONDS, READINGS_EVALUATED, READINGS_SETTLED, count_event
from alerts._model import Point, StoredReading, assess_parts, plausible
from alerts._rules import RULES
from alerts._store import load_state, save_book

__all__ = ["HISTORY_CAP", "evaluate_per_reading", "evaluate_readings", "load_history"]

logger = logging.getLogger(__name__)

# Value codes the windowed rules read for each reading type, and the history type they fill.
TYPE_CODES: dict[str, tuple[str, ...]] = {
    "blood_pressure": ("systolic", "diastolic"),
    "glucose": ("glucose",),
    "body_weight": ("body_weight",),
    "body_composition": ("body_weight",),
}
CODE_TYPE = {
    "systolic": "blood_pressure",
    "diastolic": "blood_pressure",
    "glucose": "glucose",
    "body_weight": "body_weight",
}
# At most this many of the latest readings per patient and code are loaded for one window:
# enough for every per-reading rule (last M of N-of-M, 15 min, 7 daily weights, 24 h of
# glucose) and a bound on the work whatever a device sends.
HISTORY_CAP = 48
_RULE_IDS = frozenset(RULES)


async def load_history(
    conn: psycopg.AsyncConnection[Any],
    needs: dict[uuid.UUID, dict[str, tuple[datetime, datetime]]],
    exclude: set[uuid.UUID],
    cap: int = HISTORY_CAP,
) -> dict[uuid.UUID, History]:
    """One query for every (patient, code) window that some rule needs: the latest ``cap``
    values each, by the (patient_id, code, time DESC) index, aggregated into arrays."""
    wanted: dict[tuple[uuid.UUID, str], tuple[datetime, datetime]] = {}
    for pid, per_type in needs.items():
        for type_, (t0, t1) in per_type.items():
            for code in TYPE_CODES.get(type_, ()):
                old = wanted.get((pid, code))
                wanted[(pid, code)] = (
                    (t0, t1) if old is None else (min(old[0], t0), max(old[1], t1))
                )
    out: dict[uuid.UUID, History] = {pid: History() for pid in needs}
    if not wanted:
        return out
    keys = list(wanted)
    async with conn.cursor(binary=True) as cur:
        await cur.execute(
            """
            SELECT w.pid, w.code, x.ids, x.times, x.vals, x.flags
            FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[])
                 AS w(pid, code, t0, t1)
            CROSS JOIN LATERAL (
                SELECT array_agg(r.reading_id) AS ids, array_agg(r.time) AS times,
                       array_agg(r.value) AS vals,
                       array_agg(array_to_string(r.flags, ',')) AS flags
                FROM (SELECT reading_id, time, value, flags FROM readings
                      WHERE patient_id = w.pid AND code = w.code
                        AND time >= w.t0 AND time <= w.t1
                      ORDER BY time DESC LIMIT %s) AS r
            ) AS x
            WHERE x.ids IS NOT NULL
            """,
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [wanted[k][0] for k in keys],
                [wanted[k][1] for k in keys],
                cap,
            ),
        )
        rows = await cur.fetchall()
    # keyed by the id's integer (hashed in C; a UUID hashes in Python), time-ordered by it too
    skip = {rid.int for rid in exclude}
    merged: dict[tuple[uuid.UUID, str], dict[int, tuple[uuid.UUID, datetime, str, Any]]] = {}
    for pid, code, ids, times, vals, flags in rows:
        per = merged.setdefault((pid, CODE_TYPE[code]), {})
        for rid, t, v, f in zip(ids, times, vals, flags, strict=True):
            key = rid.int
            entry = per.get(key)
            if entry is not None:
                entry[3][code] = v
            elif key not in skip:
                per[key] = (rid, t, f, {code: v})
    for (pid, type_), per in merged.items():
        points = []
        for t, _, rid, f, values in sorted((t, k, rid, f, v) for k, (rid, t, f, v) in per.items()):
            if f:
                q = assess_parts(tuple(f.split(",")), values)
                if q.excluded or not q.values:
                    continue
                points.append(Point(t, rid, q.values, q.suspect, q.time_trusted, ""))
            elif kept := plausible(values):  # no flags: what assess_parts keeps, nothing else
                points.append(Point(t, rid, kept, False, True, ""))
        out[pid].extend(type_, points)
    return out


async def evaluate_readings(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    *,
    now: datetime | None = None,
) -> None:
    """Run the rules on readings that ingest has just inserted, in ingest's transaction.

    Batch-oriented: whatever the number of readings and patients, at most three round trips —
    (1) pipelined: per-patient advisory locks (held to the end of the caller's transaction, so
    concurrent ingest processes and the scheduler serialise per patient), contexts, threshold
    overrides, active episodes ``FOR UPDATE``; (2) one history query, only if some rule on some
    reading needs history; (3) pipelined writes, only if an episode changed. Never commits or
    rolls back. Pass only readings that were actually inserted; a reading id already known to
    the history or to an episode raises nothing new either way. Late readings are evaluated in
    clinical-time order and recorded without paging (see ``alerts/README.md``).

    Patients whose readings can open, change or clear nothing (``alerts._batch``: no episode
    these readings or time could touch, every value inside the patient's thresholds by vector
    comparison) are settled in bulk: no history, no engine.
    """
    await _evaluate(conn, readings, now, prefilter=prefilter_enabled())


async def evaluate_per_reading(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    *,
    now: datetime | None = None,
) -> None:
    """:func:`evaluate_readings` without the batch prefilter: every patient through the
    per-reading engine (the reference the tests and ``carebeacon bench alerts`` compare)."""
    await _evaluate(conn, readings, now, prefilter=False)


async def _evaluate(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    now: datetime | None,
    *,
    prefilter: bool,
) -> None:
    if not readings:
        return
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    by_patient: dict[uuid.UUID, list[StoredReading]] = {}
    for r in readings:
        by_patient.setdefault(r.patient_id, []).append(r)
    patients = sorted(by_patient)
    contexts, episodes, resolved = await load_state(conn, patients, now)
    known = [pid for pid in patients if pid in contexts]
    if len(known) < len(patients):
        logger.debug(
            "%d patients unknown to alerts; their readings skipped", len(patients) - len(known)
        )
    settled = _settled(known, contexts, episodes, by_patient) if prefilter else set()
    books: dict[uuid.UUID, Book] = {}
    needs: dict[uuid.UUID, dict[str, tuple[datetime, datetime]]] = {}
    for pid in known:
        if pid in settled:
            continue
        ctx = contexts[pid]
        books[pid] = Book.of(episodes.get(pid, ()), resolved.get(pid, ()), ctx)
        needs[pid] = history_needs(ctx, books[pid], by_patient[pid])
    histories = await load_history(conn, needs, {r.reading_id for r in readings})
    changed: list[Book] = []
    for pid, book in books.items():
        evaluate_patient(contexts[pid], histories[pid], book, by_patient[pid], now)
        if book.changed:
            changed.append(book)
    events: list[Event] = await save_book(conn, changed) if changed else []
    READINGS_EVALUATED.inc(len(readings))
    if settled:
        READINGS_SETTLED.inc(sum(len(by_patient[pid]) for pid in settled))
    _count(events, changed)
    EVALUATE_SECONDS.observe(time.perf_counter() - started)
    if events:
        logger.debug(
            "evaluated %d readings of %d patients: %d episode events",
            len(readings),
            len(patients),
            len(events),
        )


def _settled(
    patients: Sequence[uuid.UUID],
    contexts: Mapping[uuid.UUID, PatientContext],
    episodes: Mapping[uuid.UUID, Sequence[Episode]],
    by_patient: Mapping[uuid.UUID, Sequence[StoredReading]],
) -> set[uuid.UUID]:
    """The patients whose readings can open, change or clear nothing (``alerts._batch``)."""
    candidates = [
        pid
        for pid in patients
        if pid not in episodes
        or settled(contexts[pid], episodes[pid], {r.type for r in by_patient[pid]})
    ]
    if not candidates:
        return set()
    rows = [r for pid in candidates for r in by_patient[pid]]
    mask = quiet_mask(rows, [contexts[r.patient_id] for r in rows])
    starts = np.cumsum([0] + [len(by_patient[pid]) for pid in candidates[:-1]])
    quiet = np.logical_and.reduceat(mask, starts)
    return {pid for pid, q in zip(candidates, quiet.tolist(), strict=True) if q}


def _count(events: Sequence[Event], books: Sequence[Book]) -> None:
    index = {ep.id: ep for b in books for ep in b.changed.values()}
    for e in events:
        ep = index.get(e.episode_id)
        if ep is not None:
            count_event(e.kind, ep.rule_id, ep.severity.label, _RULE_IDS)
