"""Care-management time entries (the evidence behind 99457/99458/99470)."""

from __future__ import annotations

import uuid
from datetime import datetime

from web._db import Conn, Row

__all__ = ["insert_time_entry"]


async def insert_time_entry(
    conn: Conn,
    *,
    patient_id: uuid.UUID,
    user_id: int,
    started_at: datetime,
    minutes: float,
    interactive: bool,
    episode_id: uuid.UUID | None = None,
    note: str | None = None,
) -> Row:
    cur = await conn.execute(
        "INSERT INTO care_time_entries (patient_id, user_id, started_at, seconds, interactive,"
        " episode_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id, patient_id, user_id, started_at, seconds, interactive, episode_id",
        (patient_id, user_id, started_at, round(minutes * 60), interactive, episode_id, note),
    )
    row = await cur.fetchone()
    assert row is not None
    return row
