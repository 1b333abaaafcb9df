"""Issue 19: what became of each reading of a batch (``StoreResult.outcomes``, what receipts
carry), and counters that count only what committed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Sequence
from typing import Any

import aiomqtt
import psycopg
import pytest
from prometheus_client import REGISTRY

from alerts import StoredReading, evaluate_readings
from ingest.service import IngestConfig, run
from ingest.store import (
    Message,
    StoreResult,
    decode_message,
    quarantine_unstorable,
    store_messages,
)
from lab.services import forget_ingest_session
from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = pytest.mark.db


async def _store(database: str, messages: Sequence[Message]) -> StoreResult:
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        return await store_messages(conn, messages)


def _id(reading: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(reading["id"])


async def test_every_reading_of_a_batch_has_its_outcome(database: str, home: Home) -> None:
    other = register_home(database)
    old, new, twice = (bp_reading(home.cuff_id) for _ in range(3))
    await _store(database, [Message(topic(home.gateway_id), batch(home.gateway_id, [old]))])
    unknown_device = bp_reading(f"unknown-{uuid.uuid4().hex[:6]}")
    impossible = bp_reading(home.cuff_id, systolic=400)  # not a human blood pressure
    no_id = bp_reading(home.cuff_id)
    no_id["id"] = "not-a-uuid"
    whole = bp_reading(other.cuff_id)
    wrong_schema = json.loads(batch(other.gateway_id, [whole]))
    wrong_schema["schema"] = "carebeacon.readings/9"
    result = await _store(
        database,
        [
            Message(
                topic(home.gateway_id),
                batch(home.gateway_id, [old, new, twice, twice, unknown_device, impossible, no_id]),
            ),
            Message(topic(other.gateway_id), json.dumps(wrong_schema).encode()),
        ],
    )
    assert result.outcomes == {
        home.gateway_id: {
            "stored": [_id(new), _id(twice)],
            "duplicate": [_id(twice), _id(old)],
            "quarantined": [_id(impossible), _id(unknown_device)],
        },
        other.gateway_id: {"stored": [], "duplicate": [], "quarantined": [_id(whole)]},
    }


async def test_a_message_the_database_refuses_lists_its_readings_as_quarantined(
    database: str, home: Home
) -> None:
    readings = [bp_reading(home.cuff_id) for _ in range(2)]
    decoded = decode_message(Message(topic(home.gateway_id), batch(home.gateway_id, readings)))
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        result = await quarantine_unstorable(conn, decoded, "refused")
    assert result.outcomes == {
        home.gateway_id: {"stored": [], "duplicate": [], "quarantined": [_id(r) for r in readings]}
    }


def test_results_add_up_outcome_by_outcome() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    total, first, second = StoreResult(), StoreResult(), StoreResult()
    first.outcome("gw-1", "stored", a)
    second.outcome("gw-1", "quarantined", b)
    second.outcome("gw-2", "duplicate", c)
    total.add(first)
    total.add(second)
    assert total.outcomes == {
        "gw-1": {"stored": [a], "duplicate": [], "quarantined": [b]},
        "gw-2": {"stored": [], "duplicate": [c], "quarantined": []},
    }


def _counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _counters() -> dict[str, float]:
    return {
        "stored": _counter("carebeacon_ingest_readings_stored_total", {"type": "blood_pressure"}),
        "duplicate": _counter("carebeacon_ingest_readings_duplicate_total"),
        "storage_error": _counter(
            "carebeacon_ingest_quarantined_total", {"reason": "storage_error"}
        ),
    }


@pytest.mark.broker
async def test_counters_count_what_committed_once_through_a_refusal_and_an_outage(
    ingest_config: IngestConfig, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    """A batch the database refuses is stored message by message; the connection is lost
    after the first message has committed; the rest is retried. Each committed reading is
    counted once, and nothing that rolled back is counted."""
    calls = 0

    async def evaluate_then_lose_the_connection(
        conn: psycopg.AsyncConnection[Any], readings: Sequence[StoredReading]
    ) -> None:
        nonlocal calls
        calls += 1
        await evaluate_readings(conn, readings)
        if calls == 2:  # the second message on its own: its transaction never commits
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    good_1, good_2 = bp_reading(home.cuff_id), bp_reading(home.cuff_id)
    refused = bp_reading(home.cuff_id)
    # JSON that Python reads as an infinite float; PostgreSQL's jsonb refuses it
    refused_payload = batch(home.gateway_id, [refused]).replace(
        b'"raw": {', b'"raw": {"big": 1e400, ', 1
    )
    tag = uuid.uuid4().hex[:6]
    config = dataclasses.replace(
        ingest_config,
        client_id=f"{ingest_config.client_id}-{tag}",
        share_group=f"{ingest_config.share_group}-{tag}",
        flush_seconds=1.0,  # the three messages form one batch
    )
    before = _counters()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run(config, evaluate=evaluate_then_lose_the_connection, stop=stop, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for payload in (batch(home.gateway_id, [good_1]), refused_payload):
            await publisher.publish(topic(home.gateway_id), payload, qos=1)
        await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [good_2]), qos=1)
        await eventually(
            lambda: (
                _counters()["stored"] - before["stored"] >= 2
                and _counters()["storage_error"] - before["storage_error"] >= 1
            )
        )
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 15)
        await forget_ingest_session(config.settings, config.client_id)
    stored = count(
        database,
        "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)",
        [_id(good_1), _id(good_2)],
    )
    assert stored == 2
    assert calls >= 3  # the outage happened, and the second message was evaluated again
    # (not compared: messages and quarantine repeats, which other gateways' retained statuses
    # on the shared broker move too)
    after = _counters()
    assert {k: after[k] - before[k] for k in after} == {
        "stored": 2,
        "duplicate": 0,
        "storage_error": 1,
    }
