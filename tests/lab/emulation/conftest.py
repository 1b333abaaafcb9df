"""Fixtures for the emulated BLE tests: an EmulatedAir per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lab.emulation import EmulatedAir


@pytest.fixture
async def air() -> AsyncIterator[EmulatedAir]:
    async with EmulatedAir() as emulated_air:
        yield emulated_air
