"""Fixtures for the alert tests: an async connection to the session's migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest_asyncio


@pytest_asyncio.fixture
async def conn(database: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection whose work is rolled back after the test (autocommit off)."""
    async with await psycopg.AsyncConnection.connect(database) as c:
        yield c
        await c.rollback()
