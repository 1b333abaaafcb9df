"""Fixtures of the database tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.timescale import PrivateTimescale, private_timescale


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateTimescale]:
    """A private TimescaleDB cluster (the shared one is never loaded or locked)."""
    with private_timescale() as cluster:
        yield cluster
