"""Two batches in flight on two connections (``IngestConfig.writers``): a patient's readings are
still evaluated in the order their batches arrived (``ingest.store.Turn``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from alerts import evaluate_readings
from ingest.store import Message, StoreResult, Turn, store_messages
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic

pytestmark = pytest.mark.db


def _severe(home: Home, systolic: float, minutes_ago: int = 1) -> Message:
    """One reading in the severe range (> 180 mmHg systolic, AHA/ACC 2025)."""
    measured = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(
        minutes=minutes_ago
    )
    reading = bp_reading(home.cuff_id, systolic=systolic, diastolic=100, measured_at=measured)
    return Message(topic(home.gateway_id), batch(home.gateway_id, [reading]))


async def _store(conn: psycopg.AsyncConnection[Any], message: Message, turn: Turn) -> StoreResult:
    return await store_messages(conn, [message], evaluate_readings, turn=turn)


async def _pending(task: asyncio.Task[Any]) -> bool:
    await asyncio.sleep(0.3)
    return not task.done()


async def test_the_later_batch_of_a_patient_waits_for_the_earlier_one(
    database: str, home: Home
) -> None:
    first_message, later_message = _severe(home, 186, minutes_ago=2), _severe(home, 196)
    first_turn = Turn(after=asyncio.Event(), locked=asyncio.Event())
    later_turn = Turn(after=first_turn.locked, locked=asyncio.Event())
    async with (
        await psycopg.AsyncConnection.connect(database) as first_conn,
        await psycopg.AsyncConnection.connect(database) as later_conn,
    ):

        async def later() -> StoreResult:
            async with later_conn.transaction():
                return await _store(later_conn, later_message, later_turn)

        # the later batch is ready first; it waits for the earlier batch to write its readings
        # and lock its patients (the earlier batch waits for its own turn)
        later_task = asyncio.create_task(later())
        assert await _pending(later_task)
        assert not later_turn.locked.is_set()

        async with first_conn.transaction():
            first_turn.after.set()
            first = await _store(first_conn, first_message, first_turn)
            assert first_turn.locked.is_set()
            # now the later batch waits in the database (the chunk the earlier batch created, the
            # patient's lock) until the earlier batch commits
            assert await _pending(later_task)
        later_result = await asyncio.wait_for(later_task, 10)

    assert first.stored["blood_pressure"] == later_result.stored["blood_pressure"] == 1
    async with await psycopg.AsyncConnection.connect(database) as conn:
        cur = await conn.execute(
            "SELECT count, first_value, last_value, cardinality(evidence) FROM alert_episodes"
            " WHERE patient_id = %s AND value_code = 'systolic'",
            (home.patient_id,),
        )
        episodes = await cur.fetchall()
    # one episode, opened by the earlier reading; the later one was evaluated after it
    assert episodes == [(2, 186.0, 196.0, 2)]


async def test_a_batch_with_nothing_new_still_passes_the_turn_on(database: str, home: Home) -> None:
    message = _severe(home, 190)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        first = Turn(after=asyncio.Event(), locked=asyncio.Event())
        first.after.set()
        async with conn.transaction():
            await _store(conn, message, first)
        again = Turn(after=first.locked, locked=asyncio.Event())
        async with conn.transaction():
            result = await _store(conn, message, again)  # a redelivery: nothing to write or lock
    assert result.duplicates == 1
    assert again.locked.is_set()
