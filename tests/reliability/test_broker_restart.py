"""Mosquitto restarted during a stream: persistent sessions and queued QoS 1 messages survive,
every reading is stored exactly once. Uses a private broker so that nothing else is disturbed.

With a plain subscription (the default for one ingest process). Mosquitto 2.0.11 does not
restore *shared* subscriptions after a restart: what gateways publish before the ingest
processes resubscribe has no subscriber and is dropped (measured: 100 of 100 lost in this test
with a share group) — see the README's scaling notes."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator

import aiomqtt
import pytest
from pydantic import SecretStr

from alerts import evaluate_readings
from ingest.service import IngestConfig, run
from tests.support.broker import PrivateBroker
from tests.support.db import count
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    b = PrivateBroker({"ingest": "ingest-pw", "admin": "admin-pw"})
    b.start()
    yield b
    b.remove()


async def test_broker_restart_mid_stream(
    ingest_config: IngestConfig, broker: PrivateBroker, database: str, home: Home
) -> None:
    settings = ingest_config.settings.model_copy(
        update={
            "mqtt_port": broker.port,
            "mqtt_ingest_user": "ingest",
            "mqtt_ingest_password": SecretStr("ingest-pw"),
        }
    )
    config = dataclasses.replace(ingest_config, settings=settings, share_group="")
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, evaluate=evaluate_readings, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    ids: list[uuid.UUID] = []

    async def send(n: int) -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            username="admin",
            password="admin-pw",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as publisher:
            for _ in range(n):
                reading = bp_reading(home.cuff_id)
                ids.append(uuid.UUID(reading["id"]))
                await publisher.publish(
                    topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1
                )

    def stored() -> int:
        return count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)

    try:
        await send(400)  # acknowledged by the broker; ingest is still working through them
        broker.stop()
        at_restart = stored()
        await asyncio.sleep(1.0)
        broker.start()
        await send(100)
        await eventually(lambda: stored() == 500, within=30)
        await asyncio.sleep(1.0)
        assert stored() == 500
        assert (
            count(database, "SELECT count(*) FROM readings WHERE reading_id = ANY(%s)", ids)
            == 3 * 500
        )
        assert at_restart < 500  # the restart really happened mid-stream
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
