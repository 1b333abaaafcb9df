"""The test database: a scratch one of its own, and reading it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from carebeacon.settings import Settings
from db.migrations import apply_migrations

__all__ = ["count", "scratch_database"]


@contextlib.contextmanager
def scratch_database(settings: Settings, prefix: str = "cbtest") -> Iterator[str]:
    """A fresh, migrated database of its own, dropped afterwards. Yields its conninfo."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        conninfo = settings.pg_conninfo(name)
        apply_migrations(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count(conninfo: str, sql: str, *params: Any) -> int:
    """The integer the query's first row starts with (0 when there is no row)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0
