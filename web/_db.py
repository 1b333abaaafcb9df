"""The web app's connection pool (psycopg 3, async) and the row types it reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["Conn", "Row", "alerts_conn", "generic_plans", "make_pool"]

Row = dict[str, Any]
Conn = AsyncConnection[DictRow]


async def _configure(conn: Conn) -> None:
    await conn.execute("SET application_name = 'carebeacon-web'")
    await conn.execute("SET statement_timeout = '10s'")
    # Exactly "UTC": psycopg then loads timestamptz values with datetime.timezone.utc, three
    # times faster than through a ZoneInfo (a server default such as "Etc/UTC"); the queue
    # loads ~10,000 of them per view. The same instants either way: SQL that needs a local
    # time names the site's zone (AT TIME ZONE).
    await conn.execute("SET TimeZone = 'UTC'")
    await conn.commit()


def make_pool(conninfo: str, *, min_size: int = 2, max_size: int = 10) -> AsyncConnectionPool[Conn]:
    """An unopened pool; the app opens it in its lifespan."""
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure,
        open=False,
        connection_class=AsyncConnection[DictRow],
        name="carebeacon-web",
    )


async def generic_plans(conn: Conn) -> None:
    """Until the end of the transaction, run prepared statements with their generic plan.

    For reads of a patient's readings over many chunks: a custom plan is planned anew at every
    execution, one scan per chunk in the range (1-4 ms for a year of 14-day chunks, more than
    the reads themselves), while the generic plan excludes the chunks outside the range when
    it starts. psycopg prepares a statement from its fifth execution on a connection; before
    that this changes nothing. PostgreSQL's own choice keeps the custom plans: they look
    cheaper for the short ranges that share the statement."""
    await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")


@contextlib.asynccontextmanager
async def alerts_conn(conn: Conn) -> AsyncIterator[AsyncConnection[Any]]:
    """The connection as alerts/ expects it (its default row factory: tuples)."""
    conn.row_factory = tuple_row  # type: ignore[assignment]
    try:
        yield conn
    finally:
        conn.row_factory = dict_row
