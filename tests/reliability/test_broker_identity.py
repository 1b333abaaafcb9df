"""Issue 17, finding 1: a gateway login cannot take over ingest's MQTT session.

A private Mosquitto runs the project's own rendered configuration (both listeners). A
provisioned gateway connects on the TLS gateway listener with ingest's client id — the worst
case, as if it had guessed it — repeatedly while another gateway publishes readings, and once,
with a clean start, while ingest is stopped and its persistent session holds acknowledged
readings. Before the fix the gateway's CONNECT replaced ingest's session: ingest was knocked off
on every attempt, and the queued readings were lost. Now ingest stays connected and every
reading the broker acknowledged is stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from carebeacon.settings import Settings
from ingest.service import IngestConfig, run
from lab.services import render_mosquitto
from tests.support.broker import RenderedBroker
from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]

INTRUDER = "gw-intruder"


@pytest.fixture
def home(database: str) -> Home:
    return register_home(database)


@pytest.fixture
def broker(settings: Settings, database: str, home: Home) -> Iterator[RenderedBroker]:
    dbname = database.rsplit("/", 1)[1]
    rendered = RenderedBroker(
        settings,
        {home.gateway_id: "home-pw", INTRUDER: "intruder-pw"},
        pg_database=dbname,
    )
    rendered.start()
    try:
        yield rendered
    finally:
        rendered.remove()


@contextlib.asynccontextmanager
async def _ingest(config: IngestConfig) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _intrude(broker: RenderedBroker, client_id: str, *, clean_start: bool) -> None:
    """Connect on the gateway listener as a provisioned gateway with ``client_id``."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    with contextlib.suppress(aiomqtt.MqttError):
        async with broker.gateway_client(
            INTRUDER,
            "intruder-pw",
            identifier=client_id,
            clean_start=clean_start,
            properties=properties,
        ) as client:
            await client.subscribe(f"carebeacon/v1/gateways/{INTRUDER}/config", qos=1)
            await asyncio.sleep(0.2)


def _stored(database: str, ids: list[uuid.UUID]) -> int:
    return count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)


async def test_a_gateway_with_ingests_client_id_cannot_replace_its_session(
    broker: RenderedBroker, home: Home, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = IngestConfig.from_env(broker.settings)  # the default (derived) client id
    ids: list[uuid.UUID] = []
    caplog.set_level(logging.WARNING, logger="ingest.service")
    async with broker.gateway_client(home.gateway_id, "home-pw") as gateway:

        async def publish(n: int) -> None:
            for _ in range(n):
                reading = bp_reading(home.cuff_id)
                ids.append(uuid.UUID(reading["id"]))
                await gateway.publish(
                    topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1
                )
                await asyncio.sleep(0.05)

        # ingest running: takeover attempts while readings flow
        async with _ingest(config):
            attempts = [
                _intrude(broker, config.client_id, clean_start=i % 2 == 0) for i in range(6)
            ]
            await asyncio.gather(publish(20), *attempts)
            await eventually(lambda: _stored(database, ids) == len(ids), within=20)
        lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
        assert lost == [], "ingest was knocked off the broker"

        # ingest stopped: its persistent session holds readings the broker acknowledged; a
        # clean-start CONNECT with ingest's id would discard that session
        await publish(10)
        await _intrude(broker, config.client_id, clean_start=True)
        await _intrude(broker, config.client_id, clean_start=False)
        async with _ingest(config):
            await eventually(lambda: _stored(database, ids) == len(ids), within=20)
    assert _stored(database, ids) == len(ids) == 30
    assert (
        count(database, "SELECT count(*) FROM quarantine WHERE gateway_id = %s", home.gateway_id)
        == 0
    )


def test_the_default_ingest_client_id_stays_fixed() -> None:
    """The client id names the persistent session that holds what arrives while ingest is down:
    it must not change with a password rotation (the queued messages would be orphaned). It
    need not be secret: the test above shows a gateway cannot take it over."""
    one = Settings(mqtt_ingest_password=SecretStr("first-secret"))
    two = Settings(mqtt_ingest_password=SecretStr("second-secret"))
    host_only = f"ingest-{socket.gethostname()}"
    assert IngestConfig.from_env(one).client_id == host_only
    assert IngestConfig.from_env(two).client_id == host_only
    explicit = Settings(ingest_client_id="ingest-fixed")
    assert IngestConfig.from_env(explicit).client_id == "ingest-fixed"


def test_the_rendered_gateway_listener_pins_client_ids_to_usernames() -> None:
    """What ``carebeacon services up`` writes: the option sits in the gateway (TLS) listener's
    block, and the internal listener (ingest, admin, benchmarks) keeps its clients' own ids."""
    settings = Settings(mqtt_port=1883, mqtt_tls_port=8883)
    conf = render_mosquitto(Path("/srv/broker"), settings)["mosquitto.conf"]
    internal, gateways = conf.split("\nlistener 8883 ")
    assert "\nlistener 1883 127.0.0.1\n" in internal
    assert "use_username_as_clientid" not in internal
    assert "\nuse_username_as_clientid true\n" in gateways
