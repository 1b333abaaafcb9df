"""The live path: ``evaluate_readings`` inside ingest's transaction."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from alerts._batch import prefilter_enabled, quiet_mask, settled
from alerts._engine import (
    Book,
    Episode,
    Event,
    PatientContext,
    evaluate_patient,
    history_needs,
    rules_for,
)
from alerts._history import History
from alerts._metrics import (
    EVALUATE_SECONDS,
    READINGS_EVALUATED,
    READINGS_SETTLED,
    count_events,
)
from alerts._model import Point, StoredReading, assess, assess_parts, plausible
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
# The batch path reads first this many (plus the patient's readings in the batch, which the
# query returns too) and goes back for HISTORY_CAP only for a patient one of whose rules may
# read further back than that: the same history for every read (see _covered).
HISTORY_FIRST = 12
#: the rules of a batch hand the event loop back this often (ingest's other batch in flight
#: writes meanwhile: its COPY stalls while the loop is busy)
YIELD_EVERY_SECONDS = 0.002
_RULE_IDS = frozenset(RULES)
# Per (patient, code): the latest ``cap`` values in [t0, t1], by the (patient_id, code, time
# DESC) index (readings has no index on time alone: db/sql/075), aggregated into arrays.
HISTORY_QUERY = """
SELECT w.pid, w.code, x.ids, x.times, x.vals, x.flags
FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[])
     AS w(pid, code, t0, t1, cap)
CROSS JOIN LATERAL (
    SELECT array_agg(r.reading_id) AS ids, array_agg(r.time) AS times,
           array_agg(r.value) AS vals,
           array_agg(array_to_string(r.flags, ',')) AS flags
    FROM (SELECT reading_id, time, value, flags FROM readings
          WHERE patient_id = w.pid AND code = w.code
            AND time >= w.t0 AND time <= w.t1
          ORDER BY time DESC LIMIT w.cap) AS r
) AS x
WHERE x.ids IS NOT NULL
"""
_Key = tuple[uuid.UUID, str]


def _wanted(
    needs: Mapping[uuid.UUID, Mapping[str, tuple[datetime, datetime]]],
) -> dict[_Key, tuple[datetime, datetime]]:
    """Per (patient, value code), the clinical-time window to read."""
    wanted: dict[_Key, tuple[datetime, datetime]] = {}
    for pid, per_type in needs.items():
        for type_, (t0, t1) in per_type.items():
            for code in TYPE_CODES.get(type_, ()):
                old = wanted.get((pid, code))
                wanted[(pid, code)] = (
                    (t0, t1) if old is None else (min(old[0], t0), max(old[1], t1))
                )
    return wanted


async def load_history(
    conn: psycopg.AsyncConnection[Any],
    needs: dict[uuid.UUID, dict[str, tuple[datetime, datetime]]],
    exclude: set[uuid.UUID],
    cap: int = HISTORY_CAP,
) -> dict[uuid.UUID, History]:
    """One query for every (patient, code) window that some rule needs: the latest ``cap``
    values each, by the (patient_id, code, time DESC) index, aggregated into arrays."""
    wanted = _wanted(needs)
    histories, _ = await _load(conn, needs, wanted, exclude, dict.fromkeys(wanted, cap))
    return histories


async def _load(
    conn: psycopg.AsyncConnection[Any],
    patients: Iterable[uuid.UUID],
    wanted: Mapping[_Key, tuple[datetime, datetime]],
    exclude: set[uuid.UUID],
    caps: Mapping[_Key, int],
) -> tuple[dict[uuid.UUID, History], dict[_Key, datetime]]:
    """The histories, and per (patient, reading type) where a code's cap was reached, the time
    of the oldest value read: at or before it, values of the window may be missing."""
    out: dict[uuid.UUID, History] = {pid: History() for pid in patients}
    edges: dict[_Key, datetime] = {}
    if not wanted:
        return out, edges
    keys = list(wanted)
    async with conn.cursor(binary=True) as cur:
        await cur.execute(
            HISTORY_QUERY,
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [wanted[k][0] for k in keys],
                [wanted[k][1] for k in keys],
                [caps[k] for k in keys],
            ),
        )
        rows = await cur.fetchall()
    # keyed by the id's integer (hashed in C; a UUID hashes in Python), time-ordered by it too
    skip = {rid.int for rid in exclude}
    merged: dict[_Key, dict[int, tuple[uuid.UUID, datetime, str, Any]]] = {}
    for pid, code, ids, times, vals, flags in rows:
        type_ = CODE_TYPE[code]
        if len(ids) >= caps[(pid, code)]:
            oldest = min(times)
            edge = edges.get((pid, type_))
            edges[(pid, type_)] = oldest if edge is None else max(edge, oldest)
        per = merged.setdefault((pid, type_), {})
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
    return out, edges


class _DeepReaders:
    """The patients whose last first read did not cover their rules (a second read followed):
    for the next ``uses`` batches they are read at ``HISTORY_CAP`` at once, one query instead
    of two. A hint only: that read is what :func:`load_history` gives, so the rules see the
    same either way. Bounded: at most ``size`` patients, the oldest hint dropped first."""

    def __init__(self, size: int = 10_000, uses: int = 20) -> None:
        self.size = size
        self.uses = uses
        self._left: dict[uuid.UUID, int] = {}

    def __contains__(self, pid: object) -> bool:
        return pid in self._left

    def used(self, patients: Iterable[uuid.UUID]) -> None:
        for pid in patients:
            left = self._left.get(pid)
            if left is not None:
                if left <= 1:
                    del self._left[pid]  # the next batch tries the first read again
                else:
                    self._left[pid] = left - 1

    def add(self, patients: Iterable[uuid.UUID]) -> None:
        for pid in patients:
            self._left.pop(pid, None)
            self._left[pid] = self.uses
        while len(self._left) > self.size:
            del self._left[next(iter(self._left))]


_DEEP = _DeepReaders()


async def _load_covering(
    conn: psycopg.AsyncConnection[Any],
    needs: dict[uuid.UUID, dict[str, tuple[datetime, datetime]]],
    exclude: set[uuid.UUID],
    contexts: Mapping[uuid.UUID, PatientContext],
    by_patient: Mapping[uuid.UUID, Sequence[StoredReading]],
) -> dict[uuid.UUID, History]:
    """What :func:`load_history` gives for every read the rules make, in fewer values: first
    the latest ``HISTORY_FIRST`` (+ the patient's batch) per key, then ``HISTORY_CAP`` for the
    patients some read of which that does not cover (a second query, only if needed)."""
    wanted = _wanted(needs)
    cap_of = {
        pid: HISTORY_CAP
        if contexts[pid].thresholds.postpartum_end is not None  # parameters change with time
        or pid in _DEEP
        else min(HISTORY_CAP, HISTORY_FIRST + len(by_patient[pid]))
        for pid in needs
    }
    _DEEP.used(cap_of)
    caps = {key: cap_of[key[0]] for key in wanted}
    histories, edges = await _load(conn, needs, wanted, exclude, caps)
    short: dict[uuid.UUID, dict[str, datetime]] = {}
    for (pid, type_), edge in edges.items():
        if cap_of[pid] < HISTORY_CAP:
            short.setdefault(pid, {})[type_] = edge
    again = {
        pid
        for pid, edges_of in short.items()
        if not _covered(contexts[pid], by_patient[pid], histories[pid], edges_of)
    }
    _DEEP.add(again)
    if again:
        sub = {k: w for k, w in wanted.items() if k[0] in again}
        more, _ = await _load(conn, again, sub, exclude, dict.fromkeys(sub, HISTORY_CAP))
        histories.update(more)
    return histories


def _covered(
    ctx: PatientContext,
    readings: Sequence[StoredReading],
    history: History,
    edges: Mapping[str, datetime],
) -> bool:
    """Whether every read that a per-reading rule may make for these readings sees what
    HISTORY_CAP would have given: its window starts after the edge (the oldest value read
    where the first cap was reached), or it reads the last N values (``Rule.reads_last``) and N
    of them lie after the edge. A rule reads history only where ``wants_history`` says so; its
    episode may open during the batch, so each is asked as if its family were active."""
    for r in readings:
        values = assess(r).values
        for rid in rules_for(ctx.thresholds.enabled, r.type):
            rule = RULES[rid]
            params = ctx.thresholds.rule(rid)
            if not rule.wants_history(values, r.flags, params, True):
                continue
            start = r.time - rule.lookback(params)
            for type_ in rule.types:
                edge = edges.get(type_)
                if edge is None or start > edge:
                    continue
                n = rule.reads_last(params)
                # (start <= edge here: N values after the edge are all inside the window)
                if n is not None and history.count_after(type_, edge, r.time) >= n:
                    continue
                return False
    return True


async def evaluate_readings(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    *,
    now: datetime | None = None,
) -> None:
    """Run the rules on readings that ingest has just inserted, in ingest's transaction.

    Batch-oriented: whatever the number of readings and patients, at most four round trips —
    (1) pipelined: per-patient advisory locks (held to the end of the caller's transaction, so
    concurrent ingest processes and the scheduler serialise per patient), contexts, threshold
    overrides, active episodes ``FOR UPDATE``; (2) one history query, only if some rule on some
    reading needs history, and a second one only for patients whose rules read further back
    than the first read (``_load_covering``); (3) pipelined writes, only if an episode changed. Never commits or
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
    # the new readings, which the history must not hold yet: only the patients it is read for
    exclude = {r.reading_id for pid, per in needs.items() if per for r in by_patient[pid]}
    histories = (
        await _load_covering(conn, needs, exclude, contexts, by_patient)
        if prefilter
        else await load_history(conn, needs, exclude)
    )
    changed: list[Book] = []
    pause = time.perf_counter() + YIELD_EVERY_SECONDS
    for pid, book in books.items():
        evaluate_patient(contexts[pid], histories[pid], book, by_patient[pid], now)
        if book.changed:
            changed.append(book)
        if time.perf_counter() >= pause:
            await asyncio.sleep(0)  # the event loop's other work (another batch's COPY) goes on
            pause = time.perf_counter() + YIELD_EVERY_SECONDS
    events: list[Event] = await save_book(conn, changed) if changed else []
    READINGS_EVALUATED.inc(len(readings))
    if settled:
        READINGS_SETTLED.inc(sum(len(by_patient[pid]) for pid in settled))
    count_events(events, changed, _RULE_IDS)
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
