"""Issue 16: gateway ids are global on a shared broker. Provisioning a gateway clears what was
left retained under its id (another deployment's gateway, a retired one), before the gateway
can use it: a fresh deployment inherits no status and no config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest

from carebeacon.settings import Settings
from tests.support.broker import admin_client, clear_retained, publish_as_admin
from tests.support.web import SITE_A, Client, Server, user

pytestmark = [pytest.mark.db, pytest.mark.broker]


async def _retained(settings: Settings, gateway_id: str, within: float = 1.5) -> set[str]:
    """The kinds of retained message the broker hands a new subscriber on the gateway's topics."""
    found: set[str] = set()
    async with admin_client(settings) as client:
        await client.subscribe(f"carebeacon/v1/gateways/{gateway_id}/+", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                if message.payload:
                    found.add(str(message.topic).rsplit("/", 1)[1])

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), within)
    return found


async def test_provisioning_clears_what_another_deployment_left_under_the_id(
    settings: Settings, server: Server, clients: dict[str, Client]
) -> None:
    gateway_id = f"wt-fresh-{uuid.uuid4().hex[:8]}"
    prefix = f"carebeacon/v1/gateways/{gateway_id}"
    elsewhere = {"schema": "carebeacon.status/1", "gateway_id": gateway_id, "state": "online"}
    config = {"schema": "carebeacon.gateway-config/1", "devices": []}
    try:
        await publish_as_admin(settings, f"{prefix}/status", json.dumps(elsewhere).encode())
        await publish_as_admin(settings, f"{prefix}/config", json.dumps(config).encode())
        assert await _retained(settings, gateway_id) == {"status", "config"}
        resp = clients[user("admin", SITE_A)].post("/api/gateways", json={"id": gateway_id})
        assert resp.status_code == 201, resp.text
        assert await _retained(settings, gateway_id) == set()
    finally:
        await clear_retained(settings, [gateway_id])
