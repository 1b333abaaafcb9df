"""The MQTT side against the project's Mosquitto: batches, status, config, refusals, outages."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from carebeacon.settings import Settings
from gateway import Allowlist, DeviceEntry, GatewayConfig, Outbox, PublishDenied, StatusBoard
from gateway.publisher import Publisher, _ConfirmingClient, topics
from tests.support.broker import (
    Login,
    RenderedBroker,
    clear_retained,
    new_login,
    publish_as_admin,
    wait_login,
    watching,
)
from tests.support.gateway import make_config, read_state
from tests.support.network import free_port
from tests.support.readings import fake_readings
from tests.support.waiting import eventually

pytestmark = pytest.mark.broker


@asynccontextmanager
async def publishing(config: GatewayConfig) -> AsyncIterator[Publisher]:
    outbox = Outbox(config.state_dir / "gateway.sqlite3", max_readings=config.outbox.max_readings)
    publisher = Publisher(config, outbox, StatusBoard(), Allowlist(config.devices))
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        publisher.stopping.set()
        await asyncio.wait_for(task, 10)
        outbox.close()


async def test_batches_of_fifty_each_reading_once(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    config = make_config(tmp_path, login, settings)
    async with watching(settings, login.gateway_id) as watcher, publishing(config) as publisher:
        publisher.outbox.add(fake_readings("meter-1", 120))
        await watcher.wait_for(lambda: len(watcher.reading_ids) >= 120)
        await asyncio.sleep(0.3)
        assert publisher.outbox.depth == 0
        await watcher.wait_for(
            lambda: watcher.statuses and watcher.statuses[-1]["outbox"]["depth"] == 0
        )
    assert sorted(len(b["readings"]) for b in watcher.batches) == [20, 50, 50]
    assert sorted(watcher.reading_ids) == sorted(str(r.id) for r in fake_readings("meter-1", 120))
    batch = watcher.batches[0]
    assert batch["schema"] == "carebeacon.readings/1"
    assert batch["gateway_id"] == login.gateway_id
    assert batch["timezone"] == "Europe/Berlin"
    assert batch["sent_at"].endswith("Z")
    online = [s for s in watcher.statuses if s.get("state") == "online"]
    assert online
    assert online[0]["schema"] == "carebeacon.status/1"
    assert set(online[0]) >= {"software_version", "devices", "unknown_devices", "outbox"}
    assert watcher.statuses[-1] == {
        "schema": "carebeacon.status/1",
        "gateway_id": login.gateway_id,
        "state": "offline",
    }


async def test_broker_down_then_back_nothing_lost_nothing_doubled(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    down = make_config(tmp_path, login, settings, port=free_port())
    async with watching(settings, login.gateway_id) as watcher:
        async with publishing(down) as publisher:
            publisher.outbox.add(fake_readings("meter-2", 75))
            await asyncio.sleep(2.0)
            assert not publisher.connected.is_set()
            assert publisher.board.alarms >= {"broker_unreachable"}
            assert publisher.outbox.depth == 75
        assert watcher.batches == []
        up = make_config(tmp_path, login, settings)
        async with publishing(up) as publisher:
            publisher.outbox.add(fake_readings("meter-2", 10, start=70))  # overlap: re-read
            await watcher.wait_for(lambda: len(watcher.reading_ids) >= 79)
            await asyncio.sleep(0.5)
            assert publisher.outbox.depth == 0
    assert len(watcher.reading_ids) == 79
    assert set(watcher.reading_ids) == {str(r.id) for r in fake_readings("meter-2", 79)}


async def test_refused_publish_is_noticed(settings: Settings, login: Login) -> None:
    client = _ConfirmingClient(
        hostname="127.0.0.1",
        port=settings.mqtt_tls_port,
        username=login.gateway_id,
        password=login.password,
        tls_context=ssl.create_default_context(cafile=settings.mqtt_ca_file),
        protocol=__import__("aiomqtt").ProtocolVersion.V5,
    )
    async with client:
        await client.publish_confirmed(topics(login.gateway_id)["status"], b"{}", retain=False)
        with pytest.raises(PublishDenied) as caught:
            await client.publish_confirmed(topics("someone-else")["readings"], b"{}")
        assert caught.value.reason_code == 135


async def test_allowlist_follows_the_retained_config_topic(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "FILE-1", "type": "glucose_meter"}]
    )
    changes: list[int] = []
    pushed = {
        "schema": "carebeacon.gateway-config/1",
        "devices": [{"id": "SRV-1", "type": "weight_scale", "address": "C0:00:00:00:00:09"}],
    }
    topic = topics(login.gateway_id)["config"]
    await publish_as_admin(settings, topic, json.dumps(pushed).encode())
    try:
        async with publishing(config) as publisher:
            publisher.on_allowlist = lambda: changes.append(1)
            await eventually(lambda: publisher.allowlist.from_server)
            assert publisher.allowlist.entries == (
                DeviceEntry("weight_scale", id="SRV-1", address="C0:00:00:00:00:09"),
            )
            await publish_as_admin(settings, topic, b"garbage")
            await asyncio.sleep(0.5)
            assert publisher.allowlist.by_id("SRV-1") is not None
        # remembered across a restart without the broker
        outbox = Outbox(config.state_dir / "gateway.sqlite3", max_readings=10)
        offline = Publisher(config, outbox, StatusBoard(), Allowlist(config.devices))
        assert offline.allowlist.by_id("SRV-1") is not None
        outbox.close()
    finally:
        await publish_as_admin(settings, topic, b"")


async def test_connection_cut_mid_stream_reconnects_and_resends(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    from tests.support.network import GatedProxy

    proxy = GatedProxy(settings.mqtt_tls_port, upstream_limit=10**12)
    async with watching(settings, login.gateway_id) as watcher, proxy.serving() as port:
        config = make_config(tmp_path, login, settings, port=port)
        async with publishing(config) as publisher:
            await eventually(publisher.connected.is_set)
            publisher.outbox.add(fake_readings("meter-cut", 300))
            await watcher.wait_for(lambda: len(watcher.reading_ids) >= 50)
            proxy.drop_all()
            await eventually(lambda: proxy.connections >= 2, within=20)
            publisher.outbox.add(fake_readings("meter-cut", 20, start=301))
            await eventually(lambda: publisher.outbox.depth == 0, within=20)
            await watcher.wait_for(lambda: len(set(watcher.reading_ids)) >= 320)
    assert set(watcher.reading_ids) == {str(r.id) for r in fake_readings("meter-cut", 320)}


async def test_retained_status_is_cleared_after_the_test(
    tmp_path: Path, settings: Settings
) -> None:
    """What the ``login`` fixture does at teardown: the gateway's retained status (and config)
    leave the shared broker, so no later ingest finds a status of an unknown gateway."""
    login = new_login()
    await wait_login(settings, login)
    config = make_config(tmp_path, login, settings)
    async with publishing(config) as publisher:
        await eventually(publisher.connected.is_set)
    await clear_retained(settings, [login.gateway_id])
    async with watching(settings, login.gateway_id) as watcher:
        await asyncio.sleep(0.5)  # a retained message arrives right after subscribing
    assert watcher.statuses == []
    assert watcher.batches == []


# --- receipts (issue 19), on a private broker with the project's ACL ------------------------


@pytest.fixture
def receipts_broker(settings: Settings) -> Iterator[tuple[RenderedBroker, Login]]:
    """The shared broker runs the ACL it was started with: receipts need this tree's."""
    login = Login(f"gwr-{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(18))
    broker = RenderedBroker(settings, {login.gateway_id: login.password})
    broker.start()
    try:
        yield broker, login
    finally:
        broker.remove()


def _receipt(gateway_id: str, **outcomes: list[str]) -> bytes:
    body: dict[str, object] = {"schema": "carebeacon.receipts/1", "gateway_id": gateway_id}
    body.update({k: outcomes.get(k, []) for k in ("stored", "duplicate", "quarantined")})
    return json.dumps(body).encode()


async def test_only_a_receipt_takes_a_reading_out_and_the_rest_is_sent_again(
    tmp_path: Path, receipts_broker: tuple[RenderedBroker, Login]
) -> None:
    broker, login = receipts_broker
    config = make_config(
        tmp_path, login, broker.settings, extra="[outbox]\nreceipts = true\nreceipt_timeout = 2"
    )
    readings = fake_readings("meter-r", 60)
    ids = [str(r.id) for r in readings]
    receipts = topics(login.gateway_id)["receipts"]
    async with (
        watching(broker.settings, login.gateway_id) as watcher,
        publishing(config) as publisher,
    ):
        publisher.outbox.add(readings)
        await eventually(lambda: publisher.published_messages >= 2)
        assert {b["schema"] for b in watcher.batches} == {"carebeacon.readings/2"}
        assert publisher.outbox.depth == 60  # the broker has them: not a reason to forget
        await publish_as_admin(
            broker.settings,
            receipts,
            _receipt(login.gateway_id, stored=ids[:40], duplicate=ids[40:45],
                     quarantined=ids[45:50]),
            retain=False,
        )  # fmt: skip
        await eventually(lambda: publisher.outbox.depth == 10)
        answered = len(watcher.readings)
        assert publisher.quarantined_readings == 5
        # no receipt for the last ten: sent again, with the same ids, and only they
        await watcher.wait_for(lambda: len(watcher.readings) >= answered + 10)
        assert sorted(watcher.reading_ids[answered:]) == sorted(ids[50:])
        assert publisher.resent_readings >= 10
        # another gateway's receipt (the ACL keeps them away; a stray one is ignored)
        publisher._on_receipt(_receipt("someone-else", stored=ids[50:]))
        assert publisher.outbox.depth == 10
        await publish_as_admin(
            broker.settings, receipts, _receipt(login.gateway_id, stored=ids[50:]),
            retain=False,
        )  # fmt: skip
        await eventually(lambda: publisher.outbox.depth == 0)
        assert publisher.receipted_readings == 60
        assert publisher.outbox.add(readings) == 0  # remembered as delivered
    assert set(watcher.reading_ids) == set(ids)


async def test_unreceipted_readings_survive_a_restart_and_are_sent_again(
    tmp_path: Path, receipts_broker: tuple[RenderedBroker, Login]
) -> None:
    broker, login = receipts_broker
    config = make_config(
        tmp_path, login, broker.settings, extra="[outbox]\nreceipts = true\nreceipt_timeout = 600"
    )
    readings = fake_readings("meter-s", 30)
    async with watching(broker.settings, login.gateway_id) as watcher:
        async with publishing(config) as publisher:
            publisher.outbox.add(readings)
            await watcher.wait_for(lambda: len(watcher.readings) >= 30)
        state = read_state(config)
        assert state.depth == 30
        state.close()
        async with publishing(config) as publisher:  # restarted: sent again at once
            await watcher.wait_for(lambda: len(watcher.readings) >= 60)
            assert sorted(watcher.reading_ids[30:]) == sorted(str(r.id) for r in readings)


async def test_readings_no_one_subscribes_to_stay_in_the_outbox(
    tmp_path: Path, receipts_broker: tuple[RenderedBroker, Login]
) -> None:
    """MQTT 5 PUBACK reason 16 ("no matching subscribers", e.g. ingest's shared subscription
    not yet restored after a broker restart) is not a delivery: nothing would store the
    readings, so they stay in the outbox and are sent again once someone subscribes."""
    broker, login = receipts_broker
    config = make_config(tmp_path, login, broker.settings)
    readings = fake_readings("meter-16", 30)
    async with publishing(config) as publisher:
        publisher.outbox.add(readings)
        await asyncio.sleep(2.0)  # no subscriber: the broker answers 16 to every batch
        assert publisher.outbox.depth == 30
        async with watching(broker.settings, login.gateway_id) as watcher:
            await watcher.wait_for(lambda: len(set(watcher.reading_ids)) >= 30, within=60)
            await eventually(lambda: publisher.outbox.depth == 0)
    assert set(watcher.reading_ids) == {str(r.id) for r in readings}
