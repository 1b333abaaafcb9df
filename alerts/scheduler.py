"""``carebeacon scheduler``: the time-based rules and SLA escalation.

Every ``interval`` seconds the leader (one process among several, chosen by a PostgreSQL
session advisory lock) runs :func:`tick`: confirmation deadlines of pending crisis episodes,
hold times of clearing episodes, missing data, gateway offline and battery low (from the
gateways' retained status), snooze expiry, and escalation of open episodes whose SLA passed
without acknowledgement (care manager → supervisor → on-call clinician). The rules are the
same objects the live path uses (:func:`alerts._engine.advance`). After each pass the leader
runs the pipeline's dead-man's switch (:func:`check_pipeline`: no reading stored while gateways
are online, a late pass, the broker unreachable), recorded in ``pipeline_health``.

The clock is a parameter (:class:`ManualClock` in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from alerts._engine import (
    PERIOD,
    Book,
    Event,
    Facts,
    advance,
    evaluate_periodic,
    periodic_rules,
)
from alerts._history import History
from alerts._live import load_history
from alerts._metrics import (
    SCHEDULER_LAST_PASS,
    SCHEDULER_LEADER,
    SCHEDULER_PATIENT_ERRORS,
    SCHEDULER_TICK_SECONDS,
    count_events,
)
from alerts._pipeline import PIPELINE_CHECKS, PipelineBounds, broker_reachable, check_pipeline
from alerts._rules import RULES
from alerts._store import (
    load_active_episodes,
    load_contexts,
    load_resolved,
    lock_patients,
    save_book,
)
from carebeacon import systemd

__all__ = [
    "LEADER_LOCK",
    "PIPELINE_CHECKS",
    "Clock",
    "ManualClock",
    "PipelineBounds",
    "SystemClock",
    "TickResult",
    "broker_reachable",
    "check_pipeline",
    "main",
    "run",
    "tick",
]

logger = logging.getLogger(__name__)

LEADER_LOCK = (0x414C5254, 1)  # ("ALRT", 1): session advisory lock held by the leader
_RULE_IDS = frozenset(RULES)
PERIODIC_CAP = 200  # readings per patient and code for the 7-day mean (4 a day is 28)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class DrillClock:
    """For drills (``carebeacon scheduler --now``): starts at a given instant and runs at the
    speed of real time from there."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)


def _instant(text: str) -> datetime:
    """``--now``: ISO 8601 with a UTC offset (``2026-12-01T08:00Z``)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with its UTC offset (e.g. Z)")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TickResult:
    patients: int
    events: int
    escalations: int


def _batteries(status: Any) -> list[tuple[str, float]]:
    """``status.devices[].battery_percent`` of a gateway's retained status (carebeacon.status/1)."""
    out: list[tuple[str, float]] = []
    if not isinstance(status, dict):
        return out
    devices = status.get("devices")
    if not isinstance(devices, list):
        return out
    for d in devices:
        if not isinstance(d, dict):
            continue
        level = d.get("battery_percent", d.get("battery_level"))
        if isinstance(level, int | float) and not isinstance(level, bool):
            out.append((str(d.get("id", "")), float(level)))
    return out


async def _patients(conn: psycopg.AsyncConnection[Any], now: datetime) -> list[uuid.UUID]:
    cur = await conn.execute(
        """
        SELECT patient_id FROM enrollments
        WHERE (ended_at IS NULL OR ended_at > %(now)s)
          AND consent_state(id, %(now)s) IS DISTINCT FROM 'withdrawn'  -- the consent history
        UNION
        SELECT patient_id FROM alert_episodes WHERE state <> 'resolved'
        """,
        {"now": now},
    )
    return sorted(r[0] for r in await cur.fetchall())


async def _facts(
    conn: psycopg.AsyncConnection[Any], patients: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, Facts]:
    cur = await conn.execute(
        """
        SELECT p.id,
               coalesce((SELECT max(rr.time) FROM reading_receipts rr
                         WHERE rr.patient_id = p.id AND rr.time <= %(now)s
                           AND NOT ('control_solution' = ANY(rr.flags))),
                        (SELECT max(e.enrolled_at) FROM enrollments e WHERE e.patient_id = p.id)),
               (SELECT json_agg(json_build_array(
                           g.online,
                           coalesce(greatest(g.status_at, g.last_seen_at), g.created_at),
                           g.status))
                FROM gateway_patients gp JOIN gateways g ON g.id = gp.gateway_id
                WHERE gp.patient_id = p.id)
        FROM unnest(%(ids)s::uuid[]) AS p(id)
        """,
        {"ids": list(patients), "now": now},
    )
    out: dict[uuid.UUID, Facts] = {}
    for pid, last, gateways in await cur.fetchall():
        gws = gateways or []
        offline_since: datetime | None = None
        if gws and not any(g[0] for g in gws):
            offline_since = min(datetime.fromisoformat(g[1]) for g in gws)
        batteries = [b for g in gws if g[0] for b in _batteries(g[2])]
        out[pid] = Facts(
            last_reading_at=last,
            gateway_offline_since=offline_since,
            gateway_known=bool(gws),
            low_batteries=tuple(batteries) if gws else None,
        )
    return out


async def _pass(
    conn: psycopg.AsyncConnection[Any], part: list[uuid.UUID], now: datetime, periodic: bool
) -> list[Event]:
    """One transaction: the timers, escalations (and with ``periodic`` the periodic rules) of
    the patients in ``part``; returns the events written (and counted)."""
    async with conn.transaction():
        await lock_patients(conn, part)
        contexts = await load_contexts(conn, part, now)
        episodes = await load_active_episodes(conn, part)
        resolved = await load_resolved(conn, part, now)
        facts = await _facts(conn, part, now)
        histories: dict[uuid.UUID, History] = {}
        if periodic:
            needs: dict[uuid.UUID, dict[str, tuple[datetime, datetime]]] = {}
            for pid, pctx in contexts.items():
                for rid in periodic_rules(pctx):
                    rule = RULES[rid]
                    start = now - rule.lookback(pctx.thresholds.rule(rid))
                    for type_ in rule.types:
                        old = needs.setdefault(pid, {}).get(type_)
                        needs[pid][type_] = (start if old is None else min(old[0], start), now)
            histories = await load_history(conn, needs, set(), cap=PERIODIC_CAP)
        books: list[Book] = []
        for pid in part:
            ctx = contexts.get(pid)
            if ctx is None:
                continue
            book = Book.of(episodes.get(pid, ()), resolved.get(pid, ()), ctx)
            advance(ctx, book, now, now, facts.get(pid), escalate=True)
            if pid in histories:
                evaluate_periodic(ctx, histories[pid], book, now, now)
            if book.changed:
                books.append(book)
        written = await save_book(conn, books) if books else []
    count_events(written, books, _RULE_IDS)
    return written


async def tick(
    conn: psycopg.AsyncConnection[Any],
    *,
    now: datetime,
    periodic: bool = False,
    chunk: int = 500,
) -> TickResult:
    """One pass over every enrolled patient (and every patient with an active episode), in
    chunks; each chunk is its own transaction, committed here (the scheduler owns ``conn``).
    Patient advisory locks serialise it with ingest's evaluation of the same patients. With
    ``periodic``, the periodic rules (7-day mean) run too, on each patient's loaded history."""
    started = time.perf_counter()
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.commit()
    patients = await _patients(conn, now)
    await conn.commit()
    events = escalations = failed = 0
    for i in range(0, len(patients), chunk):
        part = patients[i : i + chunk]
        try:
            written = await _pass(conn, part, now, periodic)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            # one patient's data must not stop the pass for everyone (an emergency is never
            # silent): the chunk again patient by patient, and only the one that fails is left
            logger.error("scheduler: a chunk failed (%s); patient by patient", type(exc).__name__)
            written = []
            for pid in part:
                try:
                    written += await _pass(conn, [pid], now, periodic)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as one:
                    failed += 1
                    SCHEDULER_PATIENT_ERRORS.inc()
                    logger.error("scheduler: a patient's pass failed (%s)", type(one).__name__)
        escalations += sum(e.kind == "escalated" for e in written)
        events += len(written)
    SCHEDULER_TICK_SECONDS.observe(time.perf_counter() - started)
    SCHEDULER_LAST_PASS.set_to_current_time()
    logger.info(
        "scheduler pass: %d patients, %d events, %d escalations, %d failed",
        len(patients),
        events,
        escalations,
        failed,
    )
    return TickResult(len(patients), events, escalations)


async def run(
    settings: Any,
    *,
    clock: Clock | None = None,
    interval: float = 30.0,
    stop: asyncio.Event | None = None,
    database: str | None = None,
    pipeline: PipelineBounds | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT): try to become leader, tick while leader,
    and after each pass run the pipeline checks (``pipeline``; by default a pass is late after
    ten intervals, at least 5 min).

    Two connections: one holds the leader lock for the life of the session (if it drops, the
    lock goes with it and another process takes over), the other does the work.
    """
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    bounds = pipeline or PipelineBounds(
        late_after=max(PipelineBounds().late_after, timedelta(seconds=10 * interval))
    )
    conninfo = settings.pg_conninfo(database)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    async def lead() -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                async with (
                    await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as lock_conn,
                    await psycopg.AsyncConnection.connect(conninfo) as work,
                ):
                    backoff = 1.0
                    await _lead(lock_conn, work)
            except psycopg.OperationalError as exc:
                SCHEDULER_LEADER.set(0)
                logger.warning("scheduler: database unavailable (%s); retrying", type(exc).__name__)
                delay = min(60.0, backoff) * (0.5 + random.random())  # noqa: S311
                backoff *= 2
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _check(work: psycopg.AsyncConnection[Any]) -> None:
        """The pipeline checks; a failure of theirs (other than losing the database) is
        logged and never stops the clinical work."""
        broker_ok = await broker_reachable(settings.mqtt_host, settings.mqtt_port)
        try:
            await check_pipeline(work, now=clock.now(), bounds=bounds, broker_ok=broker_ok)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            logger.error("scheduler: pipeline checks failed (%s)", type(exc).__name__)

    async def _lead(
        lock_conn: psycopg.AsyncConnection[Any], work: psycopg.AsyncConnection[Any]
    ) -> None:
        leader = False
        last_slot: int | None = None  # the periodic rules run once per PERIOD slot
        while not stop.is_set():
            if not leader:
                cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LEADER_LOCK)
                row = await cur.fetchone()
                leader = bool(row and row[0])
                SCHEDULER_LEADER.set(1 if leader else 0)
                if leader:
                    logger.info("scheduler: this process is the leader")
            if leader:
                now = clock.now()
                slot = int(now.timestamp() // PERIOD.total_seconds())
                await tick(work, now=now, periodic=slot != last_slot)
                last_slot = slot
                await _check(work)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        if leader:
            await lock_conn.execute("SELECT pg_advisory_unlock(%s, %s)", LEADER_LOCK)
            SCHEDULER_LEADER.set(0)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(lead())
        tasks.create_task(systemd.watchdog_task(stop))  # Type=notify units: see carebeacon.systemd
        systemd.notify_ready()
        await stop.wait()


def main(argv: list[str]) -> int:
    from carebeacon.logs import configure_logging
    from carebeacon.settings import Settings

    parser = argparse.ArgumentParser(
        prog="carebeacon scheduler", description="time-based alert rules and SLA escalation"
    )
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between passes")
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    parser.add_argument("--database", help="database name (default: CAREBEACON_PG_DATABASE)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--stall-after",
        type=float,
        default=60.0,
        help="minutes without a stored reading, gateways online, before no_readings (60)",
    )
    parser.add_argument(
        "--late-after",
        type=float,
        help="seconds between passes before scheduler_late (10 intervals, at least 300)",
    )
    parser.add_argument(
        "--now",
        type=_instant,
        help="drills: the clock starts at this time (ISO 8601 with offset, e.g."
        " 2026-12-01T08:00Z) and runs on from there; with --once, the one pass's time",
    )
    args = parser.parse_args(argv)
    late = args.late_after if args.late_after is not None else max(300.0, 10 * args.interval)
    bounds = PipelineBounds(
        stall_after=timedelta(minutes=args.stall_after), late_after=timedelta(seconds=late)
    )
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_format == "json")
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")  # as ingest: local only
    if args.once:

        async def once() -> None:
            async with await psycopg.AsyncConnection.connect(
                settings.pg_conninfo(args.database)
            ) as conn:
                now = args.now or datetime.now(UTC)
                await tick(conn, now=now, periodic=True)
                broker_ok = await broker_reachable(settings.mqtt_host, settings.mqtt_port)
                await check_pipeline(conn, now=now, bounds=bounds, broker_ok=broker_ok)

        asyncio.run(once())
        return 0
    clock = DrillClock(args.now) if args.now else None
    asyncio.run(
        run(settings, clock=clock, interval=args.interval, database=args.database, pipeline=bounds)
    )
    return 0
