"""The project's Mosquitto: gateways log in over TLS and publish only under their own prefix."""

from __future__ import annotations

import asyncio
import ssl
import uuid

import aiomqtt
import pytest

from carebeacon.broker import provision_gateway_credentials
from carebeacon.settings import Settings
from tests.support.broker import admin_client

pytestmark = pytest.mark.broker


def _tls(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.mqtt_ca_file)


def _gateway(
    settings: Settings, gateway_id: str, password: str, *, tls: bool = True
) -> aiomqtt.Client:
    return aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_tls_port if tls else settings.mqtt_port,
        username=gateway_id,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=_tls(settings) if tls else None,
    )


async def _forge_then_continue(gateway: aiomqtt.Client, own: str) -> None:
    await gateway.publish("carebeacon/v1/gateways/someone-else/readings", b"forged", qos=1)
    await asyncio.sleep(0.5)
    await gateway.publish(own, b"after", qos=1)


@pytest.fixture
async def gateway_login(settings: Settings) -> tuple[str, str]:
    gateway_id, password = f"gw-acl-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    provision_gateway_credentials(gateway_id, password)
    return gateway_id, password


async def test_gateway_publishes_under_its_own_prefix_only(
    settings: Settings, gateway_login: tuple[str, str]
) -> None:
    gateway_id, password = gateway_login
    own = f"carebeacon/v1/gateways/{gateway_id}/readings"
    async with admin_client(settings) as watcher:
        await watcher.subscribe("carebeacon/v1/gateways/+/readings", qos=1)
        async with _gateway(settings, gateway_id, password) as gateway:
            await gateway.publish(own, b"first", qos=1)
            # Mosquitto 2.0.11 refuses a publish outside the gateway's prefix and, over MQTT 5,
            # drops the connection (reason 128): the forged message reaches nobody.
            with pytest.raises(aiomqtt.MqttError):
                await _forge_then_continue(gateway, own)
        async with _gateway(settings, gateway_id, password) as gateway:
            await gateway.publish(own, b"second", qos=1)
        received = []
        async for message in watcher.messages:
            received.append((str(message.topic), message.payload))
            if len(received) == 2:
                break
        assert received == [(own, b"first"), (own, b"second")]


async def test_wrong_password_and_plain_tcp_are_refused(
    settings: Settings, gateway_login: tuple[str, str]
) -> None:
    gateway_id, password = gateway_login
    with pytest.raises(aiomqtt.MqttError):
        async with _gateway(settings, gateway_id, "wrong-" + password):
            pass
    with pytest.raises(aiomqtt.MqttError):  # gateways exist on the TLS listener only
        async with _gateway(settings, gateway_id, password, tls=False):
            pass
