"""Shared fixtures: the project's real TimescaleDB and Mosquitto (``carebeacon services up``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from carebeacon.settings import Settings
from db.migrations import apply_migrations


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped afterwards. Yields its conninfo."""
    name = f"cbtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = settings.pg_conninfo(name)
    try:
        apply_migrations(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
