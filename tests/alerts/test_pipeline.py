"""The pipeline's dead-man's switch (``pipeline_health``, ``carebeacon_pipeline_stalled``).

The checks at chosen instants on the real database, then the switch end to end: a real
``carebeacon ingest`` process on the real broker is stopped while a gateway keeps publishing,
the scheduler's check opens ``no_readings``; ingest restarts, drains the queued readings and the
check clears."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from alerts.scheduler import (
    PIPELINE_CHECKS,
    ManualClock,
    PipelineBounds,
    broker_reachable,
    check_pipeline,
    run,
)
from carebeacon.settings import Settings
from ingest.service import IngestConfig
from lab.services import forget_ingest_session
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic

pytestmark = [pytest.mark.db]

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _gauge(check: str) -> float | None:
    return REGISTRY.get_sample_value("carebeacon_pipeline_stalled", {"check": check})


async def _open(conn: psycopg.AsyncConnection[Any]) -> dict[str, tuple[datetime, Any]]:
    cur = await conn.execute(
        "SELECT check_name, opened_at, detail FROM pipeline_health WHERE cleared_at IS NULL"
    )
    rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    await conn.commit()
    return rows


@pytest.fixture
async def fresh(settings: Settings) -> AsyncIterator[str]:
    """A database of its own (the checks read every gateway and every receipt)."""
    from db.migrations import apply_migrations

    name = f"cbtest_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(
        settings.pg_conninfo("postgres"), autocommit=True
    ) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    conninfo = settings.pg_conninfo(name)
    try:
        await asyncio.to_thread(apply_migrations, conninfo)
        yield conninfo
    finally:
        async with await psycopg.AsyncConnection.connect(
            settings.pg_conninfo("postgres"), autocommit=True
        ) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_no_readings_opens_only_while_a_gateway_is_online_and_clears_on_a_reading(
    fresh: str,
) -> None:
    bounds = PipelineBounds(stall_after=timedelta(minutes=30), late_after=timedelta(days=1))
    async with await psycopg.AsyncConnection.connect(fresh) as conn:
        await conn.execute(
            "INSERT INTO gateways (id, created_at, status_at, online) VALUES ('gw-a', %s, %s, false)",
            (T0, T0),
        )
        await conn.commit()
        # no gateway online: silence is expected, nothing opens however long it lasts
        state = await check_pipeline(conn, now=T0 + timedelta(hours=5), bounds=bounds)
        assert state == dict.fromkeys(PIPELINE_CHECKS, False)
        await conn.execute("UPDATE gateways SET online = true, status_at = %s", (T0,))
        pid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO reading_receipts (id, patient_id, type, time, received_at, ingested_at,"
            " device_id, gateway_id) VALUES (%s, %s, 'blood_pressure', %s, %s, %s, 'd', 'gw-a')",
            (uuid.uuid4(), pid, T0, T0, T0 + timedelta(hours=5)),
        )
        await conn.commit()
        # 30 min after the last stored reading: not yet (the bound is "more than")
        last = T0 + timedelta(hours=5)
        state = await check_pipeline(conn, now=last + timedelta(minutes=30), bounds=bounds)
        assert state["no_readings"] is False
        assert _gauge("no_readings") == 0
        state = await check_pipeline(
            conn, now=last + timedelta(minutes=30, seconds=1), bounds=bounds
        )
        assert state["no_readings"] is True
        assert _gauge("no_readings") == 1
        opened = await _open(conn)
        assert set(opened) == {"no_readings"}
        assert opened["no_readings"][0] == last + timedelta(minutes=30, seconds=1)
        assert opened["no_readings"][1] == {
            "last_stored_at": last.isoformat(),
            "gateways_online": 1,
        }
        # still failing: the same row stays open, no second one
        await check_pipeline(conn, now=last + timedelta(hours=2), bounds=bounds)
        cur = await conn.execute(
            "SELECT count(*) FROM pipeline_health WHERE check_name = 'no_readings'"
        )
        assert await cur.fetchone() == (1,)
        await conn.execute(
            "INSERT INTO reading_receipts (id, patient_id, type, time, received_at, ingested_at,"
            " device_id, gateway_id) VALUES (%s, %s, 'blood_pressure', %s, %s, %s, 'd', 'gw-a')",
            (uuid.uuid4(), pid, T0, T0, last + timedelta(hours=2, minutes=1)),
        )
        await conn.commit()
        state = await check_pipeline(conn, now=last + timedelta(hours=2, minutes=2), bounds=bounds)
        assert state["no_readings"] is False
        assert _gauge("no_readings") == 0
        cur = await conn.execute(
            "SELECT cleared_at FROM pipeline_health WHERE check_name = 'no_readings'"
        )
        assert await cur.fetchall() == [(last + timedelta(hours=2, minutes=2),)]


async def test_a_late_pass_opens_scheduler_late_and_the_next_pass_on_time_clears_it(
    fresh: str,
) -> None:
    bounds = PipelineBounds(late_after=timedelta(minutes=5))
    async with await psycopg.AsyncConnection.connect(fresh) as conn:
        assert (await check_pipeline(conn, now=T0, bounds=bounds))["scheduler_late"] is False
        now = T0 + timedelta(minutes=5)  # exactly the bound: on time
        assert (await check_pipeline(conn, now=now, bounds=bounds))["scheduler_late"] is False
        now += timedelta(minutes=12)
        assert (await check_pipeline(conn, now=now, bounds=bounds))["scheduler_late"] is True
        assert (await _open(conn))["scheduler_late"][1] == {"gap_seconds": 720.0}
        assert _gauge("scheduler_late") == 1
        now += timedelta(seconds=30)
        assert (await check_pipeline(conn, now=now, bounds=bounds))["scheduler_late"] is False
        assert _gauge("scheduler_late") == 0


async def test_broker_check_follows_a_real_connection(settings: Settings, fresh: str) -> None:
    assert await broker_reachable(settings.mqtt_host, settings.mqtt_port)
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        assert not await broker_reachable("127.0.0.1", closed, within=2.0)
    async with await psycopg.AsyncConnection.connect(fresh) as conn:
        ok = await broker_reachable("127.0.0.1", closed, within=2.0)
        assert (await check_pipeline(conn, now=T0, broker_ok=ok))["broker_unreachable"] is True
        # not checked this pass: the open row stays open
        assert (await check_pipeline(conn, now=T0))["broker_unreachable"] is True
        ok = await broker_reachable(settings.mqtt_host, settings.mqtt_port)
        assert (await check_pipeline(conn, now=T0, broker_ok=ok))["broker_unreachable"] is False


@pytest.mark.broker
async def test_the_running_scheduler_checks_after_each_pass(settings: Settings, fresh: str) -> None:
    """``run``: the leader checks the pipeline after its passes; a clock jump of 10 minutes
    between two passes (5 min is the bound for a 0.05 s interval) is a late pass, recorded with
    its gap and cleared by the next pass; the broker is up, so it opens nothing."""
    clock = ManualClock(T0)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(settings, clock=clock, interval=0.05, stop=stop, database=fresh.rsplit("/", 1)[1])
    )
    try:
        async with await psycopg.AsyncConnection.connect(fresh) as conn:

            async def rows(sql: str) -> list[tuple[Any, ...]]:
                cur = await conn.execute(sql)
                out = await cur.fetchall()
                await conn.commit()
                return out

            for _ in range(200):
                if await rows("SELECT at FROM pipeline_heartbeats"):
                    break
                await asyncio.sleep(0.05)
            assert await rows("SELECT at FROM pipeline_heartbeats") == [(T0,)]
            clock.advance(timedelta(minutes=10))
            sql = (
                "SELECT opened_at, cleared_at, detail FROM pipeline_health"
                " WHERE check_name = 'scheduler_late' AND cleared_at IS NOT NULL"
            )
            for _ in range(200):
                if await rows(sql):
                    break
                await asyncio.sleep(0.05)
            late = T0 + timedelta(minutes=10)
            assert await rows(sql) == [(late, late, {"gap_seconds": 600.0})]
            assert await rows("SELECT check_name FROM pipeline_health") == [("scheduler_late",)]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _start_scheduler(dbname: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carebeacon.cli",
            "scheduler",
            "--interval",
            "0.2",
            "--database",
            dbname,
            "--metrics-port",
            str(port),
        ],
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.broker
async def test_scheduler_process_serves_the_pipeline_metrics(fresh: str) -> None:
    """``carebeacon scheduler --metrics-port``: what Prometheus scrapes (deploy/prometheus)
    carries the checks' gauges and the last pass time after the first pass."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _start_scheduler(fresh.rsplit("/", 1)[1], port)
    try:
        text = ""
        for _ in range(100):
            await asyncio.sleep(0.1)
            try:
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                continue
            if "carebeacon_pipeline_stalled{" in text:
                break
        for check in PIPELINE_CHECKS:
            assert f'carebeacon_pipeline_stalled{{check="{check}"}} 0.0' in text
        assert "carebeacon_scheduler_leader 1.0" in text
        (last,) = [
            line
            for line in text.splitlines()
            if line.startswith("carebeacon_scheduler_last_pass_timestamp_seconds ")
        ]
        assert abs(float(last.split()[1]) - datetime.now(UTC).timestamp()) < 30
    finally:
        _stop(proc)


def _start_ingest(config: IngestConfig, dbname: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        CAREBEACON_PG_DATABASE=dbname,
        CAREBEACON_INGEST_CLIENT_ID=f"{config.client_id}-deadman",
        CAREBEACON_INGEST_SHARE_GROUP=f"{config.share_group}-deadman",
        CAREBEACON_INGEST_SESSION_EXPIRY_SECONDS="600",
        CAREBEACON_METRICS_PORT="0",
        CAREBEACON_LOG_LEVEL="INFO",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "carebeacon.cli", "ingest"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _connected(proc: subprocess.Popen[str]) -> None:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "connected to the broker" in line:
                return
        raise AssertionError("ingest exited before it connected")

    await asyncio.wait_for(asyncio.to_thread(read), 30)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


@pytest.mark.broker
async def test_stopping_ingest_while_a_gateway_publishes_opens_no_readings_and_restart_clears(
    fresh: str, ingest_config: IngestConfig, publisher: aiomqtt.Client
) -> None:
    from tests.support.homes import register_home

    home: Home = await asyncio.to_thread(register_home, fresh)
    dbname = fresh.rsplit("/", 1)[1]
    bounds = PipelineBounds(stall_after=timedelta(seconds=3), late_after=timedelta(hours=1))
    status = (
        b'{"schema": "carebeacon.status/1", "gateway_id": "%s", "state": "online"}'
        % home.gateway_id.encode()
    )

    async def publish_one() -> None:
        await publisher.publish(
            topic(home.gateway_id), batch(home.gateway_id, [bp_reading(home.cuff_id)]), qos=1
        )

    async with await psycopg.AsyncConnection.connect(fresh) as conn:

        async def state() -> dict[str, bool]:
            return await check_pipeline(conn, now=datetime.now(UTC), bounds=bounds)

        async def stored() -> int:
            cur = await conn.execute("SELECT count(*) FROM reading_receipts")
            row = await cur.fetchone()
            await conn.commit()
            return int(row[0]) if row else 0

        proc = _start_ingest(ingest_config, dbname)
        try:
            await _connected(proc)
            await publisher.publish(topic(home.gateway_id, "status"), status, qos=1)
            await publish_one()
            deadline = asyncio.get_running_loop().time() + 20
            while await stored() < 1:
                assert asyncio.get_running_loop().time() < deadline, "ingest stored nothing"
                await asyncio.sleep(0.1)
            cur = await conn.execute(
                "SELECT online FROM gateways WHERE id = %s", (home.gateway_id,)
            )
            assert await cur.fetchone() == (True,)
            await conn.commit()
            assert (await state())["no_readings"] is False

            _stop(proc)  # ingest is gone; the gateway goes on publishing
            for _ in range(8):
                await publish_one()
                await asyncio.sleep(0.5)
            assert await stored() == 1
            assert (await state())["no_readings"] is True
            assert _gauge("no_readings") == 1
            assert set(await _open(conn)) == {"no_readings"}

            proc = _start_ingest(ingest_config, dbname)
            await _connected(proc)
            # its persistent session kept what it missed: all 9 arrive, and the check clears
            deadline = asyncio.get_running_loop().time() + 30
            while await stored() < 9:
                assert asyncio.get_running_loop().time() < deadline, "the backlog never arrived"
                await asyncio.sleep(0.1)
            assert (await state())["no_readings"] is False
            assert _gauge("no_readings") == 0
            cur = await conn.execute(
                "SELECT count(*) FROM pipeline_health"
                " WHERE check_name = 'no_readings' AND cleared_at IS NOT NULL"
            )
            assert await cur.fetchone() == (1,)
            await conn.commit()
        finally:
            _stop(proc)
            await forget_ingest_session(
                ingest_config.settings, f"{ingest_config.client_id}-deadman"
            )
