"""The live path inside ingest's transaction: exactly once, late data, batch evaluation."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import alerts._live
from alerts import evaluate_readings, list_queue
from alerts._engine import evaluate_patient
from tests.support.alerts import T0, bp, make_patient, store, weight

pytestmark = pytest.mark.db

Conn = psycopg.AsyncConnection[Any]


async def _episodes(conn: Conn, patient: uuid.UUID) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT family, state, severity, count, priority, late, explanation, evidence"
        " FROM alert_episodes WHERE patient_id = %s ORDER BY created_at, family",
        (patient,),
    )
    return await cur.fetchall()


async def test_confirmed_crisis_opens_one_critical_episode(conn: Conn) -> None:
    pid = await make_patient(conn, "hypertension")
    first = bp(pid, T0, 186, 104)
    await store(conn, [first], now=T0 + timedelta(seconds=30))
    rows = await _episodes(conn, pid)
    assert [(r[0], r[1]) for r in rows] == [("bp_crisis", "pending")]
    repeat = bp(pid, T0 + timedelta(minutes=5), 184, 102)
    await store(conn, [repeat], now=T0 + timedelta(minutes=5, seconds=30))
    rows = await _episodes(conn, pid)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("bp_crisis", "open", "critical", 2, 1)
    ]
    assert set(rows[0][7]) == {first.reading_id, repeat.reading_id}
    assert "confirmed by a repeat of 184/102" in rows[0][6]
    queue = await list_queue(conn, site_id="site-a", now=T0 + timedelta(minutes=6))
    assert [e.family for e in queue if e.patient_id == pid] == ["bp_crisis"]


async def test_duplicate_delivery_raises_nothing_new(conn: Conn) -> None:
    pid = await make_patient(conn, "heart_failure")
    day = timedelta(days=1)
    base = [weight(pid, T0 + k * day, 80.0) for k in range(3)]
    await store(conn, base, now=T0 + 3 * day)
    # a gain of more than 2 lb in a day (HFSA), confirmed by a re-weigh five minutes later
    await store(conn, [weight(pid, T0 + 3 * day, 81.5)], now=T0 + 3 * day)
    gain = weight(pid, T0 + 3 * day + timedelta(minutes=5), 81.4)
    await store(conn, [gain], now=T0 + 3 * day + timedelta(minutes=5))
    before = await _episodes(conn, pid)
    assert [(r[0], r[1], r[3]) for r in before] == [("weight_gain", "open", 2)]
    # the same reading delivered again: ingest inserts nothing, so evaluates nothing
    assert await store(conn, [gain], now=T0 + 3 * day + timedelta(minutes=1)) == []
    # and even if a caller passed it again, the episode already holds its evidence
    await evaluate_readings(conn, [gain], now=T0 + 3 * day + timedelta(minutes=2))
    after = await _episodes(conn, pid)
    assert [(r[0], r[1], r[3]) for r in after] == [("weight_gain", "open", 2)]
    cur = await conn.execute(
        "SELECT count(*) FROM alert_episode_events e JOIN alert_episodes a ON a.id = e.episode_id"
        " WHERE a.patient_id = %s",
        (pid,),
    )
    assert await cur.fetchone() == (2,)  # pending (re-weigh requested), opened


async def test_late_crisis_is_recorded_without_paging(conn: Conn) -> None:
    pid = await make_patient(conn, "hypertension")
    old = T0 - timedelta(days=5)
    late = [bp(pid, old, 192, 100), bp(pid, old + timedelta(minutes=4), 190, 101)]
    await store(conn, late, now=T0)
    rows = await _episodes(conn, pid)
    assert [(r[0], r[1], r[2], r[5]) for r in rows] == [("bp_crisis", "open", "critical", True)]
    assert rows[0][4] >= 4  # routine review, no page
    assert rows[0][6].startswith("Late data (measured 5 days before it arrived)")


async def test_batch_of_many_patients_uses_one_pass(conn: Conn) -> None:
    patients = [await make_patient(conn, "hypertension") for _ in range(20)]
    batch = [bp(p, T0 + timedelta(minutes=k), 120 + k, 80) for p in patients for k in range(5)]
    await store(conn, batch, now=T0 + timedelta(hours=1))
    cur = await conn.execute(
        "SELECT count(*) FROM alert_episodes WHERE patient_id = ANY(%s)", (patients,)
    )
    assert await cur.fetchone() == (0,)


async def test_the_rules_of_a_batch_hand_the_event_loop_back(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two patients' rules, other tasks run (ingest's other batch in flight writes its
    COPY meanwhile) once ``YIELD_EVERY_SECONDS`` has passed: here at once."""
    patients = [await make_patient(conn, "hypertension") for _ in range(4)]
    batch = [bp(p, T0 + timedelta(minutes=k), 186, 104) for p in patients for k in range(2)]
    ticks = 0
    seen: list[int] = []

    def recording(*args: Any) -> None:
        seen.append(ticks)
        evaluate_patient(*args)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(alerts._live, "YIELD_EVERY_SECONDS", 0.0)
    monkeypatch.setattr("alerts._live.evaluate_patient", recording)
    task = asyncio.create_task(ticker())
    try:
        await store(conn, batch, now=T0 + timedelta(hours=1))
    finally:
        task.cancel()
    assert len(seen) >= len(patients)
    assert all(b > a for a, b in itertools.pairwise(seen))  # the ticker ran in between
