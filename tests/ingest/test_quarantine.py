"""Issue 17, findings 7 and 8 (ingest part): the quarantine cannot be used to fill the database,
its metrics equal the rows they count, and clearing a retained message is not junk.

Each test runs ingest against a private Mosquitto with the project's rendered configuration
(the shared broker delivers every session's retained status messages, which would muddle the
metric counts), into the session's database, with gateway ids of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY

from carebeacon.settings import Settings
from ingest.service import IngestConfig, run
from lab.services import render_mosquitto
from tests.support.broker import RenderedBroker
from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]

QUARANTINED = "carebeacon_ingest_quarantined_total"
SUMMARISED = "carebeacon_ingest_quarantine_summarised_total"


def _metric(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


def _rows(database: str, gateways: list[str], reason: str) -> int:
    return count(
        database,
        "SELECT count(*) FROM quarantine WHERE gateway_id = ANY(%s) AND reason = %s",
        gateways,
        reason,
    )


def _status_topic(gateway_id: str) -> str:
    return f"carebeacon/v1/gateways/{gateway_id}/status"


def _status(gateway_id: str) -> bytes:
    return (
        b'{"schema": "carebeacon.status/1", "gateway_id": "%s", "state": "online"}'
        % gateway_id.encode()
    )


@pytest.fixture
def home(database: str) -> Home:
    return register_home(database)


@contextlib.contextmanager
def _broker(
    settings: Settings, database: str, home: Home, **overrides: object
) -> Iterator[RenderedBroker]:
    rendered = RenderedBroker(
        settings,
        {home.gateway_id: "home-pw"},
        pg_database=database.rsplit("/", 1)[1],
        **overrides,
    )
    rendered.start()
    try:
        yield rendered
    finally:
        rendered.remove()


@pytest.fixture
def broker(settings: Settings, database: str, home: Home) -> Iterator[RenderedBroker]:
    with _broker(settings, database, home) as rendered:
        yield rendered


@contextlib.asynccontextmanager
async def _ingest(broker: RenderedBroker) -> AsyncIterator[None]:
    config = IngestConfig(settings=broker.settings, client_id=f"ingest-q-{uuid.uuid4().hex[:8]}")
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _publish(broker: RenderedBroker, *messages: tuple[str, bytes, bool]) -> None:
    """As the admin login on the internal listener: (topic, payload, retain)."""
    import aiomqtt

    s = broker.settings
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=s.mqtt_admin_user,
        password=s.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        for name, payload, retain in messages:
            await client.publish(name, payload, qos=1, retain=retain)


async def _marker(broker: RenderedBroker, database: str, home: Home) -> None:
    """A good reading after the others: once it is stored, what came before was handled."""
    reading = bp_reading(home.cuff_id)
    await _publish(broker, (topic(home.gateway_id), batch(home.gateway_id, [reading]), False))
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE id = %s",
                uuid.UUID(reading["id"]),
            )
            == 1
        )
    )


async def test_quarantined_total_equals_the_rows_across_repeats_and_restarts(
    broker: RenderedBroker, database: str, home: Home
) -> None:
    """The issue's 6 against 4: a message that is already quarantined (sent again, redelivered,
    or retained and delivered again to every new subscription) made no row but was counted."""
    gw, stranger = home.gateway_id, f"gw-unregistered-{uuid.uuid4().hex[:6]}"
    gateways = [gw, stranger]
    before = {r: _metric(QUARANTINED, r) for r in ("bad_json", "unknown_gateway")}
    async with _ingest(broker):
        await _publish(
            broker,
            *[(topic(gw), b"{not json", False)] * 3,
            (topic(gw), b"{retained junk", True),
            (topic(stranger), batch(stranger, [bp_reading(home.cuff_id)]), True),
        )
        await _marker(broker, database, home)
    for _ in range(2):  # each restart subscribes again: the retained messages come again
        async with _ingest(broker):
            await _marker(broker, database, home)
    rows = {r: _rows(database, gateways, r) for r in before}
    assert rows == {"bad_json": 2, "unknown_gateway": 1}
    assert {r: _metric(QUARANTINED, r) - before[r] for r in before} == rows


async def test_clearing_a_retained_message_is_not_quarantined(
    broker: RenderedBroker, database: str, home: Home
) -> None:
    gw = home.gateway_id
    async with _ingest(broker):
        await _publish(
            broker,
            (topic(gw), batch(gw, [bp_reading(home.cuff_id)]), True),
            (topic(gw), b"", True),  # clears the retained readings message
            (_status_topic(gw), _status(gw), True),
            (_status_topic(gw), b"", True),
        )
        await _marker(broker, database, home)
    assert count(database, "SELECT count(*) FROM quarantine WHERE gateway_id = %s", gw) == 0


def _max_packet_size(conf: str) -> int:
    match = re.search(r"^max_packet_size (\d+)$", conf, re.MULTILINE)
    assert match, "no max_packet_size"
    return int(match.group(1))


def test_the_broker_passes_what_ingest_calls_oversized() -> None:
    """The broker's packet limit is derived from ingest's payload limit (one setting), with room
    for the longest contract topic (MQTT: fixed header ≤ 5 bytes, topic 2 + its length, packet id
    2, properties): a payload one byte over ingest's limit reaches ingest."""
    for limit in (1_048_576, 65_536):
        settings = Settings(mqtt_max_payload_bytes=limit)
        conf = render_mosquitto(Path("/srv/broker"), settings)["mosquitto.conf"]
        longest_topic = len("carebeacon/v1/gateways//readings") + 64
        assert _max_packet_size(conf) >= 5 + 2 + longest_topic + 2 + 4 + limit + 1


async def test_a_payload_over_the_limit_is_quarantined_as_oversized(
    broker: RenderedBroker, database: str, home: Home
) -> None:
    """Sent by the gateway itself on the TLS listener: acknowledged, and quarantined as
    ``oversized`` with a sample, its size and its SHA-256 (not the whole megabyte)."""
    limit = broker.settings.mqtt_max_payload_bytes
    payload = b"{" + b"x" * limit  # one byte over
    async with _ingest(broker):
        async with broker.gateway_client(home.gateway_id, "home-pw") as gateway:
            await gateway.publish(topic(home.gateway_id), payload, qos=1)
        await _marker(broker, database, home)
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT reason, octet_length(payload), payload_bytes, payload_sha256 FROM quarantine"
            " WHERE gateway_id = %s",
            (home.gateway_id,),
        ).fetchall()
    kept = broker.settings.ingest_quarantine_payload_bytes
    assert rows == [("oversized", kept, limit + 1, hashlib.sha256(payload).hexdigest())]
    assert kept < limit


async def test_a_gateway_cannot_fill_the_quarantine(
    settings: Settings, database: str, home: Home
) -> None:
    """Budget 5 rows and 10 000 bytes a gateway in 24 h, payloads kept up to 4 096 bytes: two big
    junk messages (8 192 bytes kept), a third over the byte budget, then small ones up to five
    rows; the rest are counted in one summary row per reason. Another gateway's junk is not
    affected."""
    other = register_home(database)
    with _broker(
        settings,
        database,
        home,
        ingest_quarantine_rows_per_gateway=5,
        ingest_quarantine_bytes_per_gateway=10_000,
        ingest_quarantine_payload_bytes=4096,
    ) as broker:
        gw = home.gateway_id
        big = [b"{" + bytes([65 + i]) * 5000 for i in range(3)]
        small = [b"{junk %d" % i for i in range(5)]
        before = (_metric(QUARANTINED, "bad_json"), _metric(SUMMARISED, "bad_json"))
        async with _ingest(broker):
            await _publish(
                broker,
                *[(topic(gw), p, False) for p in big + small],
                (topic(other.gateway_id), b"{other junk", False),
            )
            await _marker(broker, database, home)
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT summary, occurrences, octet_length(payload), payload_bytes FROM quarantine"
                " WHERE gateway_id = %s ORDER BY summary, id",
                (gw,),
            ).fetchall()
        assert rows == [
            (False, 1, 4096, 5001),
            (False, 1, 4096, 5001),
            (False, 1, 7, 7),
            (False, 1, 7, 7),
            (False, 1, 7, 7),
            (True, 3, 1024, 5001 + 7 + 7),
        ]
        assert sum(octet_length for _, _, octet_length, _ in rows) <= 10_000 + 1024
        assert _rows(database, [other.gateway_id], "bad_json") == 1
        assert _metric(QUARANTINED, "bad_json") - before[0] == 6 + 1  # rows, with the other's
        assert _metric(SUMMARISED, "bad_json") - before[1] == 3
