"""Issue 16: gateway liveness from any traffic. A gateway that sends readings but no status is
online (README, Ingest): each readings batch ingest takes from a registered gateway marks it
online and moves ``last_seen_at``; a status still has the last word on ``online``; and the
scheduler's gateway-offline rule counts the time offline from the last traffic, not only from
the gateway's own (possibly old) status time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest

from alerts.scheduler import tick
from carebeacon.settings import Settings
from db import apply_migrations
from ingest.store import Message, store_messages
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db]


def _gateway(database: str, gateway_id: str) -> tuple[Any, ...]:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT online, last_seen_at, status_at FROM gateways WHERE id = %s", (gateway_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def _status(gateway_id: str, state: str, sent_at: datetime) -> bytes:
    return json.dumps(
        {
            "schema": "carebeacon.status/1",
            "gateway_id": gateway_id,
            "state": state,
            "sent_at": sent_at.isoformat(),
        }
    ).encode()


@pytest.mark.broker
async def test_readings_alone_bring_a_gateway_online(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    assert _gateway(database, home.gateway_id) == (False, None, None)  # never heard from
    before = datetime.now(UTC)
    await publisher.publish(
        topic(home.gateway_id), batch(home.gateway_id, [bp_reading(home.cuff_id)]), qos=1
    )
    await eventually(lambda: _gateway(database, home.gateway_id)[0] is True)
    _, seen, status_at = _gateway(database, home.gateway_id)
    assert seen is not None
    assert seen >= before - timedelta(seconds=1)
    assert status_at is None  # no status was sent, and none is made up

    # its last will says offline; a later batch is traffic again
    await publisher.publish(
        topic(home.gateway_id, "status"),
        _status(home.gateway_id, "offline", datetime.now(UTC)),
        qos=1,
    )
    await eventually(lambda: _gateway(database, home.gateway_id)[0] is False)
    await publisher.publish(
        topic(home.gateway_id), batch(home.gateway_id, [bp_reading(home.cuff_id)]), qos=1
    )
    await eventually(lambda: _gateway(database, home.gateway_id)[0] is True)


async def test_an_empty_batch_is_traffic_and_an_unknown_gateway_stays_unknown(
    database: str,
) -> None:
    home = register_home(database)
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        result = await store_messages(
            conn,
            [
                Message(topic(home.gateway_id), batch(home.gateway_id, [])),
                Message(topic("gw-never-registered"), batch("gw-never-registered", [])),
            ],
            now=now,
        )
    assert sum(result.stored.values()) == 0
    assert _gateway(database, home.gateway_id) == (True, now, None)
    with psycopg.connect(database) as sync:
        row = sync.execute("SELECT 1 FROM gateways WHERE id = 'gw-never-registered'").fetchone()
    assert row is None


async def _gateway_offline_state(conn: psycopg.AsyncConnection[Any], home: Home) -> str | None:
    cur = await conn.execute(
        "SELECT state FROM alert_episodes WHERE patient_id = %s AND family = 'gateway_offline'"
        " ORDER BY created_at DESC LIMIT 1",
        (home.patient_id,),
    )
    row = await cur.fetchone()
    await conn.commit()
    return None if row is None else str(row[0])


@pytest.fixture
def own_database(settings: Settings) -> Iterator[str]:
    """A database of this test's own: its scheduler passes run a week ahead of the clock, and
    the session's database must not see its episodes (later passes at the real time would
    run backwards)."""
    name = f"cbtest_live_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        apply_migrations(settings.pg_conninfo(name))
        yield settings.pg_conninfo(name)
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_offline_time_counts_from_the_last_traffic(own_database: str) -> None:
    """A last will is composed when the gateway connects, so its ``sent_at`` may be days old
    when the broker delivers it: the gateway was heard from until then, and has been offline
    only since. The threshold is at most a week (a program's range), so a gateway heard from a
    minute ago is not offline past it, and one silent for more than a week is."""
    database = own_database
    home = register_home(database)
    now = datetime.now(UTC)
    connected = now - timedelta(days=8)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.transaction():
            await store_messages(
                conn,
                [
                    Message(
                        topic(home.gateway_id), batch(home.gateway_id, [bp_reading(home.cuff_id)])
                    ),
                    Message(
                        topic(home.gateway_id, "status"),
                        _status(home.gateway_id, "offline", connected),
                    ),
                ],
                now=now,
            )
        assert _gateway(database, home.gateway_id) == (False, now, connected)
        await tick(conn, now=now + timedelta(minutes=1))
        assert await _gateway_offline_state(conn, home) in (None, "resolved")
        await tick(conn, now=now + timedelta(days=7, hours=1))
        assert await _gateway_offline_state(conn, home) == "open"
