"""Pins the private parts of aiomqtt that ``ingest/_mqtt.py`` uses (aiomqtt#345): manual
acknowledgement, and reading paused while ingest's receive window is full — on the project's
real Mosquitto. An aiomqtt upgrade that moves them fails here first."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from carebeacon.settings import Settings
from ingest._mqtt import PahoAdapter
from tests.support.broker import admin_client
from tests.support.waiting import eventually

pytestmark = pytest.mark.broker


async def test_the_private_names_exist() -> None:
    client, adapter = PahoAdapter.client(hostname="127.0.0.1", port=1)
    paho = client._client
    for name in ("manual_ack_set", "ack", "socket", "loop_read", "loop_write"):
        assert callable(getattr(paho, name)), name
    assert isinstance(client._disconnected, asyncio.Future)
    assert adapter.queued() == len(client.messages) == 0  # the inbox is the client's queue


def _client(settings: Settings, identifier: str, window: int) -> tuple[aiomqtt.Client, PahoAdapter]:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    properties.ReceiveMaximum = window
    return PahoAdapter.client(
        hostname=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_ingest_user,
        password=settings.mqtt_ingest_password.get_secret_value(),
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        properties=properties,
    )


async def _collect(client: aiomqtt.Client, into: list[aiomqtt.Message]) -> None:
    async for message in client.messages:
        into.append(message)


async def _settle(received: list[aiomqtt.Message], at_least: int) -> int:
    """Wait until ``at_least`` messages have arrived and then nothing more for a second; the
    count then."""
    await eventually(lambda: len(received) >= at_least)
    seen = -1
    while seen != len(received):
        seen = len(received)
        await asyncio.sleep(1.0)
    return seen


@pytest.fixture
async def subscribed(
    settings: Settings,
) -> AsyncIterator[tuple[aiomqtt.Client, PahoAdapter, str]]:
    tag = uuid.uuid4().hex[:8]
    topic = f"carebeacon/v1/gateways/adapter-{tag}/readings"
    client, adapter = _client(settings, f"ingest-adapter-{tag}", window=5)
    adapter.manual_ack()
    async with client:
        await client.subscribe(topic, qos=1)
        yield client, adapter, topic


async def test_unacknowledged_messages_stay_unacknowledged_and_reading_pauses(
    settings: Settings, subscribed: tuple[aiomqtt.Client, PahoAdapter, str]
) -> None:
    client, adapter, topic = subscribed
    received: list[aiomqtt.Message] = []
    task = asyncio.create_task(_collect(client, received))
    try:
        async with admin_client(settings) as publisher:
            for i in range(12):
                await publisher.publish(topic, f"{i}".encode(), qos=1)
            # MQTT 5 Receive Maximum 5, nothing acknowledged: the broker sends 5 and waits
            assert await _settle(received, 5) == 5
            adapter.pause_reading()
            assert adapter.paused
            for mid in [m.mid for m in received]:
                adapter.ack(mid, 1)  # 5 slots free: the broker sends more, unread
            assert await _settle(received, 5) == 5
            adapter.resume_reading()
            assert not adapter.paused
            # read again: at least the next 5, and never a message twice
            assert await _settle(received, 10) >= 10
            payloads = [m.payload for m in received]
            assert len(set(payloads)) == len(payloads)
            assert adapter.queued() == 0  # the iterator has taken all that was read
    finally:
        task.cancel()


async def test_a_burst_is_taken_without_the_iterator(
    settings: Settings, subscribed: tuple[aiomqtt.Client, PahoAdapter, str]
) -> None:
    _client, adapter, topic = subscribed
    async with admin_client(settings) as publisher:
        for i in range(3):
            await publisher.publish(topic, f"{i}".encode(), qos=1)
    await eventually(lambda: adapter.queued() == 3)
    taken = [adapter.take_nowait() for _ in range(4)]
    assert [m.payload if m else None for m in taken] == [b"0", b"1", b"2", None]


async def _errors_of(register: Any, paho: Any) -> list[dict[str, Any]]:
    """What the loop reports when a write registration runs after its socket has closed (a
    broker restart between paho's request and the loop's turn)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        sock = socket.socket()
        register(paho, None, sock)  # paho asks; the registration waits for the loop
        sock.close()
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(None)
    return errors


async def test_a_write_registration_for_a_socket_closed_meanwhile_is_dropped() -> None:
    client, _adapter = PahoAdapter.client(hostname="127.0.0.1", port=1)
    paho = client._client
    # aiomqtt's own registration takes the descriptor early: asyncio reports an error (if
    # this fails, aiomqtt has closed its race and the adapter's registration can go)
    assert await _errors_of(client._on_socket_register_write, paho)
    assert await _errors_of(paho.on_socket_register_write, paho) == []


async def test_a_write_registration_of_the_live_socket_writes(
    subscribed: tuple[aiomqtt.Client, PahoAdapter, str],
) -> None:
    client, _adapter, _topic = subscribed
    paho = client._client
    sock = paho.socket()
    assert isinstance(sock, socket.socket)
    register = paho.on_socket_register_write
    assert register is not None
    register(paho, None, sock)
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    assert loop.remove_writer(sock.fileno())  # it was registered (and is so no more)
