"""One bad message as the first batch of a database connection must not poison the connection.

Found by the reliability work (issue 7): ingest created its COPY staging table inside the
batch's transaction and remembered the connection as staged at once; when that first
transaction rolled back — PostgreSQL refuses the ``\\u0000`` in a reading's ``raw`` object —
the table was gone but the mark stayed, and every later good reading on that connection was
quarantined as ``storage_error`` (20 of 20). Now the staging table is ensured in every batch and
NUL characters are rejected at validation (``invalid_payload``), so the bad reading is
quarantined with its reason and the good ones are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from typing import Any

import aiomqtt
import psycopg
import pytest

from alerts import evaluate_readings
from ingest.service import IngestConfig, run
from ingest.store import Message, store_messages
from tests.support.db import count
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


async def test_a_bad_first_batch_does_not_quarantine_the_good_ones_after_it(
    ingest_config: IngestConfig, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    tag = uuid.uuid4().hex[:6]  # a fresh session: nothing queued ahead of the bad message
    config = dataclasses.replace(
        ingest_config,
        client_id=f"{ingest_config.client_id}-{tag}",
        share_group=f"{ingest_config.share_group}-{tag}",
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, evaluate=evaluate_readings, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        await _bad_then_good(publisher, database, home)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _bad_then_good(publisher: aiomqtt.Client, database: str, home: Home) -> None:
    bad = bp_reading(home.cuff_id)
    bad["raw"] = {"note": "\u0000"}
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [bad]), qos=1)
    await eventually(
        lambda: (
            count(
                database, "SELECT count(*) FROM quarantine WHERE topic = %s", topic(home.gateway_id)
            )
            >= 1
        )
    )
    good: list[uuid.UUID] = []
    for _ in range(20):
        reading = bp_reading(home.cuff_id)
        good.append(uuid.UUID(reading["id"]))
        await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1)
    await eventually(
        lambda: (
            count(
                database, "SELECT count(*) FROM quarantine WHERE topic = %s", topic(home.gateway_id)
            )
            + count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", good)
            >= 21
        )
    )
    assert count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", good) == 20
    reasons = count(
        database,
        "SELECT count(*) FROM quarantine WHERE topic = %s AND reason = 'invalid_payload'",
        topic(home.gateway_id),
    )
    assert reasons == 1


async def test_a_rolled_back_first_batch_leaves_the_connection_usable(
    database: str, home: Home
) -> None:
    """Whatever rolls back a connection's first batch (here: the caller), the next batch on the
    same connection stores its readings."""
    first, second = bp_reading(home.cuff_id), bp_reading(home.cuff_id)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        with contextlib.suppress(_Abandon):
            async with conn.transaction():
                await store_messages(conn, [_message(home, first)])
                raise _Abandon
        async with conn.transaction():
            result = await store_messages(conn, [_message(home, second)])
    assert sum(result.stored.values()) == 1
    stored = count(
        database,
        "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)",
        [uuid.UUID(first["id"]), uuid.UUID(second["id"])],
    )
    assert stored == 1


class _Abandon(Exception):
    pass


def _message(home: Home, reading: dict[str, Any]) -> Message:
    return Message(topic(home.gateway_id), batch(home.gateway_id, [reading]))
