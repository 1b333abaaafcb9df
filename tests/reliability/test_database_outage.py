"""TimescaleDB unreachable while a QoS 1 stream flows: ingest backs off (no spinning), loses
nothing, doubles nothing, and catches up when the database is back."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import aiomqtt
import pytest

from alerts import evaluate_readings
from ingest import service
from ingest.service import IngestConfig, run
from tests.support.db import count
from tests.support.homes import Home
from tests.support.network import Proxy
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


async def test_database_outage_loses_nothing(
    ingest_config: IngestConfig, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    settings = ingest_config.settings
    proxy = Proxy(settings.pg_host, settings.pg_port)
    await proxy.start()
    config = dataclasses.replace(
        ingest_config,
        settings=settings.model_copy(update={"pg_port": proxy.port}),
        client_id=f"{ingest_config.client_id}-outage",
        share_group=f"{ingest_config.share_group}-outage",
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, evaluate=evaluate_readings, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    ids: list[uuid.UUID] = []

    async def send(n: int) -> None:
        for _ in range(n):
            reading = bp_reading(home.cuff_id)
            ids.append(uuid.UUID(reading["id"]))
            await publisher.publish(
                topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1
            )

    def stored() -> int:
        return count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)

    try:
        await send(100)
        await eventually(lambda: stored() == 100)
        errors_before = service.DB_ERRORS._value.get()
        await proxy.cut()
        await send(300)  # the database is unreachable meanwhile
        await asyncio.sleep(6)
        assert stored() == 100
        retries = service.DB_ERRORS._value.get() - errors_before
        assert 1 <= retries <= 20  # capped exponential backoff, not a spin
        await proxy.start()  # back on the same port
        await eventually(lambda: stored() == 400, within=60)
        assert (
            count(database, "SELECT count(*) FROM readings WHERE reading_id = ANY(%s)", ids)
            == 3 * 400
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await proxy.cut()
