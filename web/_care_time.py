"""Care-management time entries (the evidence behind 99457/99458/99470). An entry may name the
alert episode worked on: one of the same patient's (422 naming ``episode_id`` otherwise)."""

from __future__ import annotations

import uuid
from datetime import datetime

from web._db import Conn, Row
from web._field_errors import field_error

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
    if episode_id is not None:
        cur = await conn.execute(
            "SELECT 1 FROM alert_episodes WHERE id = %s AND patient_id = %s",
            (episode_id, patient_id),
        )
        if await cur.fetchone() is None:
            # the same answer for another patient's episode, another site's and a made-up id
            raise field_error("episode_id", "not an episode of this patient")
    cur = await conn.execute(
        "INSERT INTO care_time_entries (patient_id, user_id, started_at, seconds, interactive,"
        " episode_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id, patient_id, user_id, started_at, seconds, interactive, episode_id",
        (patient_id, user_id, started_at, round(minutes * 60), interactive, episode_id, note),
    )
    row = await cur.fetchone()
    assert row is not None
    return row
