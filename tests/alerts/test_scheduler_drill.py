"""Issue 16: the scheduler's clock set from the command line for drills
(``carebeacon scheduler --once --now …``): the pass runs at that instant, not at the wall clock."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.scheduler import DrillClock
from tests.support.alerts import T0, bp, make_patient, store

pytestmark = pytest.mark.db

MIN = timedelta(minutes=1)


def _scheduler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebeacon.cli", "scheduler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_one_pass_at_a_given_time_escalates_what_is_due_then(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        pid = await make_patient(conn, "hypertension", site=f"s-{uuid.uuid4().hex[:6]}")
        # a hypertensive crisis, confirmed: its first SLA (30 min, care manager) runs from T0+5
        await store(
            conn, [bp(pid, T0, 190, 112), bp(pid, T0 + 4 * MIN, 188, 110)], now=T0 + 5 * MIN
        )
        await conn.commit()

    async def level() -> tuple[int, list[datetime]]:
        async with await psycopg.AsyncConnection.connect(database) as conn:
            cur = await conn.execute(
                "SELECT e.escalation_level, coalesce(array_agg(v.at ORDER BY v.at)"
                " FILTER (WHERE v.kind = 'escalated'), '{}') FROM alert_episodes e"
                " LEFT JOIN alert_episode_events v ON v.episode_id = e.id"
                " WHERE e.patient_id = %s AND e.family = 'bp_crisis' GROUP BY e.id",
                (pid,),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), list(row[1])

    dbname = database.rsplit("/", 1)[1]
    before = _scheduler("--once", "--database", dbname, "--now", "2026-03-02T08:20Z")
    assert before.returncode == 0, before.stderr
    assert await level() == (0, [])
    due = _scheduler("--once", "--database", dbname, "--now", "2026-03-02T09:36+01:00")
    assert due.returncode == 0, due.stderr
    assert await level() == (1, [T0 + 36 * MIN])


def test_now_needs_an_offset() -> None:
    done = _scheduler("--once", "--now", "2026-12-01T08:00")
    assert done.returncode == 2
    assert "offset" in done.stderr


def test_the_drill_clock_starts_at_the_given_time_and_runs_on() -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    clock = DrillClock(start)
    first = clock.now()
    time.sleep(0.05)
    second = clock.now()
    assert start <= first < second < start + timedelta(seconds=5)
