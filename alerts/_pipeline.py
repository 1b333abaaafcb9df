"""The pipeline's dead-man's switch: is data still flowing, is the scheduler on time, is the
broker there? Run by the scheduler after each pass (:func:`check_pipeline`).

A pipeline problem has no patient, so it is not an ``alert_episodes`` row (``patient_id`` is
NOT NULL there): each occurrence of a failing check is a ``pipeline_health`` row, open while
``cleared_at`` is NULL (at most one open per check), and the gauge
``carebeacon_pipeline_stalled{check}`` is 1 while it is open. Checks:

- ``no_readings``: no reading stored (``reading_receipts.ingested_at``) for ``stall_after``
  while at least one gateway reports itself online (before the first reading, the clock runs
  from the earliest online gateway's status);
- ``scheduler_late``: the gap between two passes of the scheduler exceeded ``late_after`` (the
  process was stopped, starved or stuck); it clears at the next pass on time. A scheduler that
  never runs again cannot say so itself: Prometheus watches
  ``carebeacon_scheduler_last_pass_timestamp_seconds`` for that;
- ``broker_unreachable``: a TCP connection to the broker's internal listener failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts._metrics import PIPELINE_STALLED

__all__ = ["PIPELINE_CHECKS", "PipelineBounds", "broker_reachable", "check_pipeline"]

logger = logging.getLogger(__name__)

PIPELINE_CHECKS = ("no_readings", "scheduler_late", "broker_unreachable")
_COMPONENT = "scheduler"


@dataclass(frozen=True, slots=True)
class PipelineBounds:
    """When a check fails. ``stall_after``: an hour without a stored reading while gateways
    are online (a handful of patients may legitimately send nothing at night: raise it for a
    small deployment); ``late_after``: a gap between two scheduler passes (ten of the default
    30 s interval)."""

    stall_after: timedelta = timedelta(hours=1)
    late_after: timedelta = timedelta(minutes=5)


async def broker_reachable(host: str, port: int, within: float = 5.0) -> bool:
    """Whether a TCP connection to the broker opens within ``within`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _reading_stall(
    conn: psycopg.AsyncConnection[Any], now: datetime, bounds: PipelineBounds
) -> tuple[bool, dict[str, Any]]:
    cur = await conn.execute(
        """
        SELECT (SELECT max(ingested_at) FROM reading_receipts),
               count(*),
               min(coalesce(status_at, created_at))
        FROM gateways WHERE online
        """
    )
    row = await cur.fetchone()
    assert row is not None
    last, online, first_online = row
    since = last if last is not None else first_online
    failing = bool(online) and since is not None and now - since > bounds.stall_after
    detail = {
        "last_stored_at": last.isoformat() if last is not None else None,
        "gateways_online": int(online),
    }
    return failing, detail


async def _late(
    conn: psycopg.AsyncConnection[Any], now: datetime, bounds: PipelineBounds
) -> tuple[bool, dict[str, Any]]:
    cur = await conn.execute(
        "SELECT at FROM pipeline_heartbeats WHERE component = %s FOR UPDATE", (_COMPONENT,)
    )
    row = await cur.fetchone()
    await conn.execute(
        "INSERT INTO pipeline_heartbeats (component, at) VALUES (%s, %s)"
        " ON CONFLICT (component) DO UPDATE SET at = excluded.at",
        (_COMPONENT, now),
    )
    previous = row[0] if row else None
    gap = now - previous if previous is not None else None
    failing = gap is not None and gap > bounds.late_after
    return failing, {"gap_seconds": gap.total_seconds() if gap is not None else None}


async def check_pipeline(
    conn: psycopg.AsyncConnection[Any],
    *,
    now: datetime,
    bounds: PipelineBounds | None = None,
    broker_ok: bool | None = None,
) -> dict[str, bool]:
    """Evaluate the checks at ``now``, open or clear their ``pipeline_health`` rows, set the
    gauges; commits (the caller owns ``conn``, as with :func:`alerts.scheduler.tick`).
    ``broker_ok`` None leaves the broker check as it was. Returns each check's state after
    the pass (True: open)."""
    bounds = bounds or PipelineBounds()
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.commit()
    results: dict[str, tuple[bool, dict[str, Any]]] = {}
    async with conn.transaction():
        results["no_readings"] = await _reading_stall(conn, now, bounds)
        results["scheduler_late"] = await _late(conn, now, bounds)
        if broker_ok is not None:
            results["broker_unreachable"] = (not broker_ok, {})
        cur = await conn.execute(
            "SELECT check_name FROM pipeline_health WHERE cleared_at IS NULL FOR UPDATE"
        )
        open_now = {r[0] for r in await cur.fetchall()}
        for name, (failing, detail) in results.items():
            if failing and name not in open_now:
                await conn.execute(  # a concurrent `scheduler --once` may have opened it
                    "INSERT INTO pipeline_health (check_name, opened_at, detail)"
                    " VALUES (%s, %s, %s)"
                    " ON CONFLICT (check_name) WHERE cleared_at IS NULL DO NOTHING",
                    (name, now, Jsonb(detail)),
                )
                open_now.add(name)
                logger.warning("pipeline check %s failing: %s", name, detail)
            elif not failing and name in open_now:
                await conn.execute(
                    "UPDATE pipeline_health SET cleared_at = greatest(%s, opened_at)"
                    " WHERE check_name = %s AND cleared_at IS NULL",
                    (now, name),
                )
                open_now.discard(name)
                logger.info("pipeline check %s recovered", name)
    for name in PIPELINE_CHECKS:
        PIPELINE_STALLED.labels(check=name).set(1 if name in open_now else 0)
    return {name: name in open_now for name in PIPELINE_CHECKS}
