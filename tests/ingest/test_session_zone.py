"""Ingest's database sessions run in UTC (``ingest.service.SESSION_OPTIONS``): psycopg then
gives ``timestamptz`` values the very tzinfo of decoded readings, ``datetime.UTC``, and two
datetimes of one tzinfo compare without their UTC offsets. The instants are those of any other
session zone."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from ingest.service import SESSION_OPTIONS

pytestmark = pytest.mark.db

_AT = "2026-03-08 06:30:00+00"  # the night New York's clocks go forward


def _read(database: str, options: str) -> datetime:
    with psycopg.connect(database, options=options) as conn:
        row = conn.execute("SELECT %s::timestamptz", (_AT,)).fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, datetime)
    return value


def test_ingest_sessions_give_the_readings_tzinfo(database: str) -> None:
    value = _read(database, SESSION_OPTIONS)
    assert value.tzinfo is UTC
    assert value == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)


def test_the_instant_is_that_of_any_other_zone(database: str) -> None:
    elsewhere = _read(database, "-c TimeZone=America/New_York")
    assert elsewhere.tzinfo is not UTC  # another zone: compared through the offsets
    assert elsewhere == _read(database, SESSION_OPTIONS)
    assert elsewhere.utcoffset() != _read(database, SESSION_OPTIONS).utcoffset()
