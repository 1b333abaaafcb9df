"""Reading the test database."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["count"]


def count(conninfo: str, sql: str, *params: Any) -> int:
    """The integer the query's first row starts with (0 when there is no row)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0
