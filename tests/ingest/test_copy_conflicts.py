"""New readings go into their tables by binary COPY (``ingest.store._insert_new``): a reading
already stored fails the COPY, which is then done again without it; a batch that keeps
conflicting (another process storing the same readings meanwhile) is settled row by row."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ingest.store import (
    _COPY_SAVEPOINT,
    Message,
    _insert_new,
    decode_message,
    store_messages,
)
from tests.support.db import count
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic

pytestmark = pytest.mark.db


@pytest.mark.parametrize("attempts", [1, 3], ids=["row-by-row", "copied-again"])
async def test_only_what_is_not_stored_is_inserted(
    database: str, home: Home, attempts: int
) -> None:
    old, new = bp_reading(home.cuff_id), bp_reading(home.cuff_id)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.transaction():
            await store_messages(
                conn, [Message(topic(home.gateway_id), batch(home.gateway_id, [old]))]
            )
        decoded = decode_message(
            Message(topic(home.gateway_id), batch(home.gateway_id, [old, new]))
        )
        assert decoded.readings is not None
        rows = {r.id.int: (home.gateway_id, home.patient_id, r) for r in decoded.readings.readings}
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(f"SAVEPOINT {_COPY_SAVEPOINT}")  # as store_messages opens it
            # one attempt: its COPY conflicts on `old`, and the statement that settles each
            # conflict on its own does the rest; three: the COPY is done again without `old`
            inserted = await _insert_new(cur, rows, attempts=attempts)
    assert [r.id for _, _, r in inserted.values()] == [uuid.UUID(new["id"])]
    for reading in (old, new):
        rid = uuid.UUID(reading["id"])
        assert count(database, "SELECT count(*) FROM reading_receipts WHERE id = %s", rid) == 1
        assert count(database, "SELECT count(*) FROM readings WHERE reading_id = %s", rid) == len(
            reading["values"]
        )
