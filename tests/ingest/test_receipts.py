"""Issue 19: receipts to gateways. What a receipt names (pure), what a stored batch records for
them (the database), and the service publishing them through the broker's ACL (a private
Mosquitto with the project's rendered configuration: ingest writes receipts, a gateway reads
only its own)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomqtt
import psycopg
import pytest

from carebeacon.settings import Settings
from ingest.receipts import receipt_messages
from ingest.service import IngestConfig, run
from ingest.store import Message, store_messages
from tests.support.broker import RenderedBroker
from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic


def _v2(gateway_id: str, readings: list[dict[str, Any]]) -> bytes:
    body = json.loads(batch(gateway_id, readings))
    body["schema"] = "carebeacon.readings/2"
    return json.dumps(body).encode()


# --- the message (pure) ---------------------------------------------------------------------


def test_a_receipt_names_each_id_once_for_the_gateways_that_asked() -> None:
    a, b, c = (uuid.uuid4() for _ in range(3))
    outcomes = {
        "gw-1": {"stored": [a], "duplicate": [b, a], "quarantined": [c]},
        "gw-2": {"stored": [uuid.uuid4()], "duplicate": [], "quarantined": []},
    }
    ((name, payload),) = receipt_messages(outcomes, {"gw-1", "gw-9"})
    assert name == "carebeacon/v1/gateways/gw-1/receipts"
    assert json.loads(payload) == {
        "schema": "carebeacon.receipts/1",
        "gateway_id": "gw-1",
        "stored": [str(a)],
        "duplicate": [str(b)],
        "quarantined": [str(c)],
    }


def test_a_large_receipt_is_split_and_loses_no_id() -> None:
    ids = [uuid.uuid4() for _ in range(2500)]
    messages = receipt_messages(
        {"gw-1": {"stored": ids[:2000], "duplicate": ids[2000:], "quarantined": []}}, ["gw-1"]
    )
    bodies = [json.loads(payload) for _, payload in messages]
    assert [len(b["stored"]) + len(b["duplicate"]) for b in bodies] == [1000, 1000, 500]
    named = [i for b in bodies for key in ("stored", "duplicate") for i in b[key]]
    assert named == [str(i) for i in ids]


# --- what a stored batch records ----------------------------------------------------------


@pytest.mark.db
async def test_store_records_stored_duplicate_and_quarantined_ids_per_gateway(
    database: str,
) -> None:
    home = register_home(database)
    good = bp_reading(home.cuff_id)
    impossible = bp_reading(home.cuff_id, systolic=900.0)
    unknown_device = bp_reading("no-such-cuff")
    broken = {**bp_reading(home.cuff_id), "values": "none"}
    payload = _v2(home.gateway_id, [good, impossible, unknown_device, broken, good])
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.transaction():
            first = await store_messages(conn, [Message(topic(home.gateway_id), payload)])
        async with conn.transaction():
            again = await store_messages(conn, [Message(topic(home.gateway_id), payload)])
    gid = uuid.UUID(good["id"])
    bad = {uuid.UUID(r["id"]) for r in (impossible, unknown_device, broken)}
    lists = first.outcomes[home.gateway_id]
    assert lists["stored"] == [gid]
    assert lists["duplicate"] == [gid]  # the same reading twice in one message
    assert set(lists["quarantined"]) == bad
    lists = again.outcomes[home.gateway_id]
    assert lists["stored"] == []
    assert lists["duplicate"] == [gid, gid]
    assert set(lists["quarantined"]) == bad  # a repeat is still rejected for good


@pytest.mark.db
async def test_a_status_from_an_unknown_gateway_is_counted_not_quarantined(
    database: str,
) -> None:
    """Issue 16: gateway ids are global on a shared broker; another deployment's retained
    status is no evidence of anything wrong here."""
    stranger = f"gw-elsewhere-{uuid.uuid4().hex[:6]}"
    status = json.dumps(
        {"schema": "carebeacon.status/1", "gateway_id": stranger, "state": "online"}
    ).encode()
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        result = await store_messages(conn, [Message(topic(stranger, "status"), status)])
    assert result.unknown_statuses == 1
    assert sum(result.quarantined.values()) == 0
    assert count(database, "SELECT count(*) FROM quarantine WHERE gateway_id = %s", stranger) == 0


# --- the service, through the broker's ACL ----------------------------------------------------


@pytest.fixture
def homes(database: str) -> tuple[Home, Home]:
    return register_home(database), register_home(database)


@pytest.fixture
def broker(settings: Settings, database: str, homes: tuple[Home, Home]) -> Iterator[RenderedBroker]:
    rendered = RenderedBroker(
        settings,
        {home.gateway_id: f"pw-{home.gateway_id}" for home in homes},
        pg_database=database.rsplit("/", 1)[1],
    )
    rendered.start()
    try:
        yield rendered
    finally:
        rendered.remove()


@contextlib.asynccontextmanager
async def _ingest(broker: RenderedBroker) -> AsyncIterator[None]:
    config = IngestConfig(settings=broker.settings, client_id=f"ingest-r-{uuid.uuid4().hex[:8]}")
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _next_receipt(client: aiomqtt.Client) -> tuple[str, dict[str, Any]]:
    async with asyncio.timeout(20):
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return str(message.topic), json.loads(message.payload)
    raise AssertionError("the subscription ended")


@pytest.mark.db
@pytest.mark.broker
async def test_a_gateway_gets_receipts_for_readings_2_only_and_only_its_own(
    broker: RenderedBroker, homes: tuple[Home, Home]
) -> None:
    a, b = homes
    a_v1, a_v2, b_v2 = (bp_reading(h.cuff_id) for h in (a, a, b))
    async with (
        _ingest(broker),
        broker.gateway_client(a.gateway_id, f"pw-{a.gateway_id}") as gw_a,
        broker.gateway_client(b.gateway_id, f"pw-{b.gateway_id}") as gw_b,
    ):
        # Mosquitto 2.0 grants any subscription; it delivers only what the ACL lets B read
        await gw_b.subscribe(f"carebeacon/v1/gateways/{a.gateway_id}/receipts", qos=1)
        await gw_b.subscribe("carebeacon/v1/gateways/+/receipts", qos=1)
        await gw_a.subscribe(f"carebeacon/v1/gateways/{a.gateway_id}/receipts", qos=1)
        await gw_a.publish(topic(a.gateway_id), batch(a.gateway_id, [a_v1]), qos=1)
        await gw_a.publish(topic(a.gateway_id), _v2(a.gateway_id, [a_v2]), qos=1)
        name, body = await _next_receipt(gw_a)
        assert name == f"carebeacon/v1/gateways/{a.gateway_id}/receipts"
        # the readings/1 message before it got none: this is the first and names only a_v2
        assert body == {
            "schema": "carebeacon.receipts/1",
            "gateway_id": a.gateway_id,
            "stored": [a_v2["id"]],
            "duplicate": [],
            "quarantined": [],
        }
        # A's receipt was published before B's: had B been allowed it, it would come first
        await gw_b.publish(topic(b.gateway_id), _v2(b.gateway_id, [b_v2]), qos=1)
        name, body = await _next_receipt(gw_b)
        assert name == f"carebeacon/v1/gateways/{b.gateway_id}/receipts"
        assert body["stored"] == [b_v2["id"]]
        # sent again (no receipt seen, say): a duplicate, receipted again
        await gw_a.publish(topic(a.gateway_id), _v2(a.gateway_id, [a_v2]), qos=1)
        _, body = await _next_receipt(gw_a)
        assert (body["stored"], body["duplicate"]) == ([], [a_v2["id"]])
