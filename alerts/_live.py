"""The live path: ``evaluate_readings`` inside ingest's transaction."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerts._engine import Book, Event, evaluate_patient
from alerts._history import History
from alerts._metrics import EVALUATE_SECONDS, READINGS_EVALUATED, count_event
from alerts._model import StoredReading
from alerts._rules import RULES
from alerts._store import load_active_episodes, load_contexts, lock_patients, save_book

__all__ = ["HISTORY_CODES", "LOOKBACK", "evaluate_readings"]

logger = logging.getLogger(__name__)

# The longest window any rule reads (7-day mean and minimum, plus a calendar day).
LOOKBACK = timedelta(days=8)
# Value codes the windowed rules read, and the reading type each one belongs to.
HISTORY_CODES = {
    "systolic": "blood_pressure",
    "diastolic": "blood_pressure",
    "glucose": "glucose",
    "body_weight": "body_weight",
}
_RULE_IDS = frozenset(RULES)


async def _load_history(
    conn: psycopg.AsyncConnection[Any],
    windows: dict[uuid.UUID, tuple[datetime, datetime]],
    exclude: set[uuid.UUID],
) -> dict[uuid.UUID, History]:
    """One query: each patient's readings in its own window, by the (patient, code, time)
    index; grouped into readings in Python."""
    pids = list(windows)
    starts = [windows[p][0] for p in pids]
    ends = [windows[p][1] for p in pids]
    grouped: dict[uuid.UUID, dict[uuid.UUID, list[Any]]] = {}
    async with conn.cursor(binary=True) as cur:
        await cur.execute(
            """
            SELECT r.patient_id, r.reading_id, r.time, r.received_at, r.device_id,
                   r.gateway_id, r.flags, r.code, r.value
            FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS w(pid, t0, t1)
            CROSS JOIN unnest(%s::text[]) AS c(code)
            JOIN readings r ON r.patient_id = w.pid AND r.code = c.code
                 AND r.time >= w.t0 AND r.time <= w.t1
            """,
            (pids, starts, ends, list(HISTORY_CODES)),
        )
        for pid, rid, t, received, device, gateway, flags, code, value in await cur.fetchall():
            if rid in exclude:
                continue
            per = grouped.setdefault(pid, {})
            entry = per.get(rid)
            if entry is None:
                per[rid] = [t, received, device, gateway, tuple(flags), {code: value}]
            else:
                entry[5][code] = value
    out: dict[uuid.UUID, History] = {}
    for pid in pids:
        history = History()
        for rid, (t, received, device, gateway, flags, values) in sorted(
            grouped.get(pid, {}).items(), key=lambda kv: kv[1][0]
        ):
            history.add(
                StoredReading(
                    reading_id=rid,
                    patient_id=pid,
                    type=HISTORY_CODES[next(iter(values))],
                    time=t,
                    received_at=received,
                    device_id=device,
                    gateway_id=gateway,
                    flags=flags,
                    values=values,
                )
            )
        out[pid] = history
    return out


async def evaluate_readings(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    *,
    now: datetime | None = None,
) -> None:
    """Run the rules on readings that ingest has just inserted, in ingest's transaction.

    Batch-oriented: whatever the number of readings and patients, a fixed handful of queries
    (patient locks, contexts + thresholds, active episodes, history, then the writes). Never
    commits or rolls back. Pass only readings that were actually inserted; a reading id already
    known to the history or to an episode raises nothing new either way.
    """
    if not readings:
        return
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    by_patient: dict[uuid.UUID, list[StoredReading]] = {}
    for r in readings:
        by_patient.setdefault(r.patient_id, []).append(r)
    patients = sorted(by_patient)
    await lock_patients(conn, patients)
    contexts = await load_contexts(conn, patients, now)
    episodes = await load_active_episodes(conn, patients)
    windows = {
        pid: (min(r.time for r in rs) - LOOKBACK, max(r.time for r in rs))
        for pid, rs in by_patient.items()
        if pid in contexts
    }
    exclude = {r.reading_id for r in readings}
    histories = await _load_history(conn, windows, exclude)
    books: list[Book] = []
    for pid in patients:
        ctx = contexts.get(pid)
        if ctx is None:
            logger.debug(
                "patient %s unknown to alerts; %d readings skipped", pid, len(by_patient[pid])
            )
            continue
        book = Book.of(episodes.get(pid, ()))
        evaluate_patient(ctx, histories[pid], book, by_patient[pid], now)
        if book.changed:
            books.append(book)
    events: list[Event] = await save_book(conn, books) if books else []
    READINGS_EVALUATED.inc(len(readings))
    _count(events, books)
    EVALUATE_SECONDS.observe(time.perf_counter() - started)
    if events:
        logger.debug(
            "evaluated %d readings of %d patients: %d episode events",
            len(readings),
            len(patients),
            len(events),
        )


def _count(events: Sequence[Event], books: Sequence[Book]) -> None:
    index = {ep.id: ep for b in books for ep in b.changed.values()}
    for e in events:
        ep = index.get(e.episode_id)
        if ep is not None:
            count_event(e.kind, ep.rule_id, ep.severity.label, _RULE_IDS)
