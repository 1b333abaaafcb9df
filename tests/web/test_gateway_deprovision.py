"""Issue 16: ``DELETE /api/gateways/{id}`` deprovisions a gateway on the project's real broker:
its login is refused afterwards, its retained status and config are gone, and so is its row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl

import aiomqtt
import httpx
import psycopg
import pytest

from carebeacon.settings import Settings
from tests.support.broker import Login, admin_client, new_login, publish_as_admin, wait_login
from tests.support.web import SITE_A, SITE_B, Client, Server, World, audit_rows, user

pytestmark = [pytest.mark.db, pytest.mark.broker]


def _delete(client: Client, url: str) -> httpx.Response:
    headers = {"X-CSRF-Token": client.csrf} if client.csrf else {}
    return client.http.delete(url, headers=headers)


async def _login_works(settings: Settings, login: Login) -> bool:
    try:
        async with aiomqtt.Client(
            settings.mqtt_host,
            settings.mqtt_tls_port,
            username=login.gateway_id,
            password=login.password,
            tls_context=ssl.create_default_context(cafile=settings.mqtt_ca_file),
            protocol=aiomqtt.ProtocolVersion.V5,
        ):
            return True
    except aiomqtt.MqttError:
        return False


async def _retained(settings: Settings, gateway_id: str, within: float = 1.5) -> dict[str, bytes]:
    """The retained messages the broker hands a new subscriber on the gateway's topics."""
    found: dict[str, bytes] = {}
    async with admin_client(settings) as client:
        await client.subscribe(f"carebeacon/v1/gateways/{gateway_id}/+", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                found[str(message.topic).rsplit("/", 1)[1]] = message.payload

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), within)
    return found


async def test_deprovisioning_removes_the_login_the_retained_topics_and_the_row(
    settings: Settings, server: Server, world: World, clients: dict[str, Client]
) -> None:
    login = new_login()
    gateway_id = login.gateway_id
    with psycopg.connect(server.conninfo) as conn:
        conn.execute("INSERT INTO gateways (id, label) VALUES (%s, 'to retire')", (gateway_id,))
        conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (gateway_id, world.patient_a),
        )
    await wait_login(settings, login)
    status = {"schema": "carebeacon.status/1", "gateway_id": gateway_id, "state": "online"}
    config = {"schema": "carebeacon.gateway-config/1", "devices": []}
    prefix = f"carebeacon/v1/gateways/{gateway_id}"
    await publish_as_admin(settings, f"{prefix}/status", json.dumps(status).encode())
    await publish_as_admin(settings, f"{prefix}/config", json.dumps(config).encode())
    assert set(await _retained(settings, gateway_id)) == {"status", "config"}

    # only an admin of the site of the patients it serves may deprovision it
    assert (
        _delete(clients[user("clinician", SITE_A)], f"/api/gateways/{gateway_id}").status_code
        == 403
    )
    assert _delete(clients[user("admin", SITE_B)], f"/api/gateways/{gateway_id}").status_code == 404
    assert await _login_works(settings, login)

    admin = clients[user("admin", SITE_A)]
    resp = _delete(admin, f"/api/gateways/{gateway_id}")
    assert resp.status_code == 204, resp.text

    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while await _login_works(settings, login):  # the broker rereads its files on SIGHUP
        assert loop.time() < end, "the deprovisioned gateway can still log in"
        await asyncio.sleep(0.3)
    assert await _retained(settings, gateway_id) == {}
    with psycopg.connect(server.conninfo) as conn:
        assert (
            conn.execute("SELECT 1 FROM gateways WHERE id = %s", (gateway_id,)).fetchone() is None
        )
        served = conn.execute(
            "SELECT count(*) FROM gateway_patients WHERE gateway_id = %s", (gateway_id,)
        ).fetchone()
    assert served == (0,)
    rows = audit_rows(server.conninfo, resource=f"gateway/{gateway_id}")
    assert [(r["action"], r["outcome"], r["username"]) for r in rows] == [
        ("deprovision gateway", "denied", user("admin", SITE_B)),
        ("deprovision gateway", "allowed", user("admin", SITE_A)),
    ]
    # gone: a second delete is "not found"
    assert _delete(admin, f"/api/gateways/{gateway_id}").status_code == 404
