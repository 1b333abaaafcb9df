"""Release after fix: store a quarantined reading again once its configuration is fixed.

A supervisor or an admin asks for it in the web app (``POST /api/quarantine/{id}/release``,
which only sets ``release_requested_at``: the web app stores no readings). Ingest's release task
(:func:`release_requested`, run every few seconds by the service) takes the rows asked for,
rebuilds each reading's batch (the reading as received, its gateway and its batch's zone) and
runs it through :func:`ingest.store.store_messages`, the path every message takes: validation,
device → patient resolution, gateway and consent checks, the exactly-once insert by reading id,
and the alert rules, in one transaction with the row's ``released_at`` and outcome:

- ``stored``: the reading is stored now;
- ``duplicate``: a reading with its id was already stored (released before, or sent again);
- ``refused: <reason>``: it would be quarantined again (the configuration is not fixed yet); no
  new quarantine row is made, and it may be released again later;
- ``payload_truncated`` / ``no_timezone``: the row does not hold the whole reading (over the
  quarantine's payload limit) or its batch's zone (quarantined before migration 070).

Rows are locked (``FOR UPDATE SKIP LOCKED``), so that two ingest instances never take the same
row; the reading id keeps a reading stored once even so.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.payload import READINGS_SCHEMA
from ingest.store import Evaluator, Message, QuarantineLimits, store_messages

__all__ = ["release_requested"]

logger = logging.getLogger(__name__)

_PENDING = """
SELECT id, reason, topic, gateway_id, payload, payload_bytes, timezone FROM quarantine
WHERE release_requested_at IS NOT NULL AND released_at IS NULL
ORDER BY release_requested_at, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


async def _release_one(
    conn: psycopg.AsyncConnection[Any],
    row: tuple[Any, ...],
    evaluate: Evaluator | None,
    now: datetime,
    limits: QuarantineLimits | None,
) -> str:
    _id, reason, topic, gateway_id, payload, payload_bytes, zone = row
    payload = bytes(payload)
    if payload_bytes is not None and payload_bytes != len(payload):
        return "payload_truncated"
    if zone is None or gateway_id is None:
        return "no_timezone"
    try:
        reading = json.loads(payload)
    except ValueError:
        return "refused: bad_json"
    batch = json.dumps(
        {
            "schema": READINGS_SCHEMA,
            "gateway_id": gateway_id,
            "timezone": zone,
            "readings": [reading],
        }
    ).encode()
    outcome = ""
    async with conn.transaction() as attempt:
        result = await store_messages(
            conn, [Message(topic, batch)], evaluate, now=now, limits=limits, traffic=False
        )
        if sum(result.stored.values()):
            return "stored"
        if result.duplicates:
            return "duplicate"
        new_reasons = sorted(result.quarantined) or sorted(result.summarised)
        outcome = f"refused: {new_reasons[0] if new_reasons else reason}"
        raise psycopg.Rollback(attempt)  # still refused: no second quarantine row
    return outcome


async def release_requested(
    conn: psycopg.AsyncConnection[Any],
    evaluate: Evaluator | None = None,
    *,
    now: datetime | None = None,
    limits: QuarantineLimits | None = None,
    batch: int = 50,
) -> Counter[str]:
    """Release up to ``batch`` rows asked for, in one transaction (committed here); the
    outcomes counted (see the module docstring)."""
    now = now or datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    async with conn.transaction():
        cur = await conn.execute(_PENDING, (batch,))
        for row in await cur.fetchall():
            outcome = await _release_one(conn, tuple(row), evaluate, now, limits)
            await conn.execute(
                "UPDATE quarantine SET released_at = %s, release_outcome = %s WHERE id = %s",
                (now, outcome, row[0]),
            )
            outcomes[outcome.split(":", 1)[0]] += 1
    if outcomes:
        logger.info("quarantine released: %s", dict(sorted(outcomes.items())))
    return outcomes
