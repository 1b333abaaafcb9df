"""Gateway fixtures: a fresh broker login per test, retained topics cleared afterwards; a
private BlueZ agent manager for pairing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from carebeacon.settings import Settings
from lab.emulation import EmulatedAir, PrivateBluez
from tests.support.broker import Login, clear_retained, new_login, wait_login


@pytest.fixture
async def retained_topics(settings: Settings) -> AsyncIterator[set[str]]:
    """Add a gateway id: its retained topics on the shared broker are cleared after the test
    (the gateways have stopped by then: a clean stop publishes its retained ``offline``)."""
    gateway_ids: set[str] = set()
    yield gateway_ids
    await clear_retained(settings, gateway_ids)


@pytest.fixture
async def login(settings: Settings, retained_topics: set[str]) -> Login:
    created = new_login()
    retained_topics.add(created.gateway_id)
    await wait_login(settings, created)
    return created


@pytest.fixture
async def bluez(air: EmulatedAir, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PrivateBluez]:
    """BlueZ's agent manager on a private D-Bus, taken as the system bus by the gateway
    (``DBUS_SYSTEM_BUS_ADDRESS``); the air's pairing asks the agent registered there."""
    async with PrivateBluez() as private:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
        air.bluez = private
        yield private
        air.bluez = None
