"""The scheduler: time-based rules, SLA escalation on a controllable clock, one leader; and
exactly-once evaluation across ingest restarts. These tests commit (the scheduler owns its
transactions), so each uses its own site and patients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts import acknowledge, episode_events, resolve
from alerts.scheduler import LEADER_LOCK, ManualClock, run, tick
from carebeacon.settings import Settings
from tests.support.alerts import T0, bp, make_patient, store

pytestmark = pytest.mark.db

Conn = psycopg.AsyncConnection[Any]
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def _episode(conn: Conn, patient: uuid.UUID, family: str) -> tuple[Any, ...] | None:
    cur = await conn.execute(
        "SELECT id, state, escalation_level, sla_due_at, suppressed_by FROM alert_episodes"
        " WHERE patient_id = %s AND family = %s ORDER BY created_at DESC LIMIT 1",
        (patient, family),
    )
    row = await cur.fetchone()
    await conn.commit()
    return row


async def test_sla_escalation_care_manager_supervisor_on_call(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        pid = await make_patient(conn, "hypertension", site=f"s-{uuid.uuid4().hex[:6]}")
        other = await make_patient(conn, "hypertension", site=f"s-{uuid.uuid4().hex[:6]}")
        pair = [bp(pid, T0, 190, 112), bp(pid, T0 + 4 * MIN, 188, 110)]
        pair2 = [bp(other, T0, 190, 112), bp(other, T0 + 4 * MIN, 188, 110)]
        await store(conn, pair + pair2, now=T0 + 5 * MIN)
        await conn.commit()
        row = await _episode(conn, pid, "bp_crisis")
        assert row is not None
        eid = row[0]
        assert row[3] == T0 + 35 * MIN
        ack = await _episode(conn, other, "bp_crisis")
        assert ack is not None
        await acknowledge(conn, ack[0], actor="cm.bob", now=T0 + 10 * MIN)
        await conn.commit()

        clock = ManualClock(T0 + 20 * MIN)
        await tick(conn, now=clock.now())
        assert (await _episode(conn, pid, "bp_crisis") or ())[2] == 0
        await tick(conn, now=clock.advance(16 * MIN))  # T0 + 36 min: SLA passed
        row = await _episode(conn, pid, "bp_crisis")
        assert row is not None
        assert row[2:4] == (1, T0 + 66 * MIN)
        await tick(conn, now=clock.advance(10 * MIN))
        assert (await _episode(conn, pid, "bp_crisis") or ())[2] == 1
        await tick(conn, now=clock.advance(25 * MIN))  # T0 + 71 min
        assert (await _episode(conn, pid, "bp_crisis") or ())[2] == 2
        await tick(conn, now=clock.advance(5 * HOUR))
        assert (await _episode(conn, pid, "bp_crisis") or ())[2] == 2  # on-call is the last level
        escalations = [
            (e.at, e.detail["to"]) for e in await episode_events(conn, eid) if e.kind == "escalated"
        ]
        assert escalations == [
            (T0 + 36 * MIN, "supervisor"),
            (T0 + 71 * MIN, "on_call_clinician"),
        ]
        assert (await _episode(conn, other, "bp_crisis") or ())[2] == 0  # acknowledged
        await conn.commit()


async def test_pending_crisis_opens_when_no_remeasure_comes(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        pid = await make_patient(conn, "maternal_postpartum", site=f"s-{uuid.uuid4().hex[:6]}")
        await store(conn, [bp(pid, T0, 166, 104)], now=T0 + MIN)
        await conn.commit()
        await tick(conn, now=T0 + 10 * MIN)
        assert (await _episode(conn, pid, "bp_crisis") or ())[1] == "pending"
        await tick(conn, now=T0 + 16 * MIN)
        assert (await _episode(conn, pid, "bp_crisis") or ())[1] == "open"


async def test_gateway_offline_suppresses_missing_data_and_battery_low(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        gw_off, gw_on = f"gw-{uuid.uuid4().hex[:8]}", f"gw-{uuid.uuid4().hex[:8]}"
        off = await make_patient(conn, "heart_failure", gateway=gw_off)
        on = await make_patient(conn, "general", gateway=gw_on)
        await conn.execute(
            "UPDATE gateways SET online = false, status_at = %s, status = %s WHERE id = %s",
            (T0 - 7 * HOUR, Jsonb({"state": "offline"}), gw_off),
        )
        status = {"state": "online", "devices": [{"id": "cuff-1", "battery_percent": 9}]}
        await conn.execute(
            "UPDATE gateways SET online = true, status_at = %s, status = %s WHERE id = %s",
            (T0, Jsonb(status), gw_on),
        )
        await conn.commit()
        await tick(conn, now=T0)
        gw = await _episode(conn, off, "gateway_offline")
        missing = await _episode(conn, off, "missing_data")
        assert gw is not None
        assert missing is not None
        assert gw[1] == "open"
        assert missing[4] == gw[0]
        battery = await _episode(conn, on, "battery_low")
        assert battery is not None
        assert battery[1] == "open"
        await conn.execute("UPDATE gateways SET online = true WHERE id = %s", (gw_off,))
        await conn.commit()
        await tick(conn, now=T0 + HOUR)
        assert (await _episode(conn, off, "gateway_offline") or ())[1] == "resolved"
        assert (await _episode(conn, off, "missing_data") or ())[4] is None


async def test_the_same_gap_after_a_resolved_episode_opens_a_new_one(database: str) -> None:
    """A care manager resolves a missing-data episode (patient called); the quiet period ends
    and the patient still sends nothing: the same gap (same last reading) is an episode again.
    Its derived id is the first one's: it must be stored under a free id, not stop the pass
    (a UniqueViolation used to end the scheduler: no escalation for anyone after it)."""
    async with await psycopg.AsyncConnection.connect(database) as conn:
        pid = await make_patient(conn, "hypertension", site=f"s-{uuid.uuid4().hex[:6]}")
        await store(conn, [bp(pid, T0, 122, 78)], now=T0 + MIN)
        await conn.commit()
        day = timedelta(days=1)
        await tick(conn, now=T0 + 4 * day)  # the hypertension template: 3 days without data
        first = await _episode(conn, pid, "missing_data")
        assert first is not None
        assert first[1] == "open"
        await resolve(
            conn, first[0], actor="cm.ann", outcome="patient_unreachable", now=T0 + 4 * day + HOUR
        )
        await conn.commit()
        later = T0 + 4 * day + HOUR + timedelta(days=8)  # past any quiet period; still no data
        await tick(conn, now=later)
        second = await _episode(conn, pid, "missing_data")
        assert second is not None
        assert second[0] != first[0]
        assert second[1] == "open"
        events = [e.kind for e in await episode_events(conn, second[0])]
        assert events[:2] == ["created", "opened"]
        await tick(conn, now=later + HOUR)  # and the passes go on
        await conn.commit()


async def test_a_patient_the_database_refuses_does_not_stop_the_pass(database: str) -> None:
    """One patient's write fails (here a trigger refuses it); the pass goes on patient by
    patient and every other patient's episode opens; the failure is counted."""
    from prometheus_client import REGISTRY

    def errors() -> float:
        return REGISTRY.get_sample_value("carebeacon_scheduler_patient_errors_total") or 0.0

    async with await psycopg.AsyncConnection.connect(database) as conn:
        site = f"s-{uuid.uuid4().hex[:6]}"
        bad = await make_patient(conn, "hypertension", site=site)
        good = await make_patient(conn, "hypertension", site=site)
        await store(conn, [bp(bad, T0, 122, 78), bp(good, T0, 122, 78)], now=T0 + MIN)
        name = f"refuse_{uuid.uuid4().hex[:8]}"
        await conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.patient_id = '{bad}' THEN RAISE EXCEPTION 'refused'; END IF;"
            " RETURN NEW; END $$"
        )
        await conn.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON alert_episodes"
            f" FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
        await conn.commit()
        before = errors()
        try:
            result = await tick(conn, now=T0 + timedelta(days=4))
        finally:
            await conn.rollback()
            await conn.execute(f"DROP TRIGGER {name} ON alert_episodes")
            await conn.execute(f"DROP FUNCTION {name}()")
            await conn.commit()
        assert result.events >= 2  # the good patient's missing_data: created, opened
        assert (await _episode(conn, good, "missing_data") or ())[1] == "open"
        assert await _episode(conn, bad, "missing_data") is None
        assert errors() == before + 1


async def test_only_the_leader_ticks(database: str, settings: Settings) -> None:
    dbname = database.rsplit("/", 1)[1]
    async with (
        await psycopg.AsyncConnection.connect(database, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(database) as conn,
    ):
        pid = await make_patient(conn, "hypertension", site=f"s-{uuid.uuid4().hex[:6]}")
        await store(conn, [bp(pid, T0, 200, 100)], now=T0 + MIN)
        await conn.commit()
        await holder.execute("SELECT pg_advisory_lock(%s, %s)", LEADER_LOCK)
        stop = asyncio.Event()
        clock = ManualClock(T0 + HOUR)
        task = asyncio.create_task(
            run(settings, clock=clock, interval=0.05, stop=stop, database=dbname)
        )
        await asyncio.sleep(0.4)
        assert (await _episode(conn, pid, "bp_crisis") or ())[1] == "pending"  # not leader
        await holder.execute("SELECT pg_advisory_unlock(%s, %s)", LEADER_LOCK)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if (await _episode(conn, pid, "bp_crisis") or ())[1] == "open":
                break
        assert (await _episode(conn, pid, "bp_crisis") or ())[1] == "open"
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_exactly_once_across_ingest_restarts(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database) as setup:
        pid = await make_patient(setup, "diabetes", site=f"s-{uuid.uuid4().hex[:6]}")
        await setup.commit()
    from tests.support.alerts import glucose

    low = glucose(pid, T0, 48.0)

    async def counts(c: Conn) -> tuple[Any, ...]:
        cur = await c.execute(
            "SELECT count(DISTINCT a.id), count(e.id) FROM alert_episodes a"
            " LEFT JOIN alert_episode_events e ON e.episode_id = a.id WHERE a.patient_id = %s",
            (pid,),
        )
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)

    # 1st delivery: ingest crashes before committing — nothing stays
    async with await psycopg.AsyncConnection.connect(database) as crashed:
        assert len(await store(crashed, [low], now=T0 + MIN)) == 1
        assert await counts(crashed) == (1, 2)
        await crashed.rollback()
    # redelivered after the restart: stored and evaluated once
    async with await psycopg.AsyncConnection.connect(database) as second:
        assert await counts(second) == (0, 0)
        assert len(await store(second, [low], now=T0 + 2 * MIN)) == 1
        await second.commit()
    # delivered yet again: nothing is inserted, so nothing is evaluated
    async with await psycopg.AsyncConnection.connect(database) as third:
        assert await store(third, [low], now=T0 + 3 * MIN) == []
        await third.commit()
        assert await counts(third) == (1, 2)


def test_scheduler_command_runs_one_pass(database: str) -> None:
    dbname = database.rsplit("/", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "carebeacon.cli", "scheduler", "--once", "--database", dbname],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "scheduler pass:" in done.stderr
