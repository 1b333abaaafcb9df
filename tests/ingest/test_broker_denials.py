"""Issue 17: a gateway's MQTT 3.1.1 publish to another gateway's topic is acknowledged by the
broker and dropped; ingest, following the broker's log (``CAREBEACON_MQTT_DENIED_LOG_FILE``), counts it
in ``carebeacon_broker_denied_publishes_total`` and names it in its log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from carebeacon.broker import denied_publishes
from ingest.brokerlog import _Follower, follow_denials
from tests.support.broker import DENIED_LOG, RenderedBroker, publish_311
from tests.support.waiting import eventually


def _denied() -> float:
    return REGISTRY.get_sample_value("carebeacon_broker_denied_publishes_total") or 0.0


@pytest.mark.broker
async def test_a_311_publish_to_a_foreign_topic_is_counted_by_ingest(
    rendered_broker: tuple[RenderedBroker, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    rendered, gateways = rendered_broker
    foreign = "carebeacon/v1/gateways/gw-b/readings"
    # history before ingest starts is not counted (an earlier run did, or it is old)
    await asyncio.to_thread(publish_311, rendered, "gw-a", gateways["gw-a"], foreign)
    stop = asyncio.Event()
    before = _denied()
    task = asyncio.create_task(
        follow_denials(rendered.dir / "mosquitto.log", stop, poll_seconds=0.05)
    )
    try:
        await asyncio.sleep(0.3)
        assert _denied() == before
        with caplog.at_level(logging.WARNING, logger="ingest.brokerlog"):
            acked = await asyncio.to_thread(
                publish_311, rendered, "gw-a", gateways["gw-a"], foreign
            )
            assert acked == 1  # the gateway is told nothing
            await asyncio.to_thread(
                publish_311, rendered, "gw-a", gateways["gw-a"], foreign.replace("gw-b", "gw-a")
            )  # its own topic: not a denial
            await eventually(lambda: _denied() == before + 1, within=10)
            await asyncio.sleep(0.3)
        assert _denied() == before + 1
        (line,) = [r.getMessage() for r in caplog.records if r.name == "ingest.brokerlog"]
        assert "gw-a" in line
        assert foreign in line
    finally:
        stop.set()
        await task


async def test_a_rotated_log_is_followed_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text(DENIED_LOG)  # history: one denial, not counted
    stop = asyncio.Event()
    before = _denied()
    task = asyncio.create_task(follow_denials(log, stop, poll_seconds=0.02))
    try:
        await asyncio.sleep(0.1)
        with log.open("a") as fh:  # a denial written in two pieces
            line = DENIED_LOG.splitlines()[1]
            fh.write(line[:20])
            fh.flush()
            await asyncio.sleep(0.1)
            fh.write(line[20:] + "\n")
        await eventually(lambda: _denied() == before + 1, within=5)
        log.rename(tmp_path / "mosquitto.log.1")  # logrotate
        log.write_text(DENIED_LOG + DENIED_LOG)  # the new file: two denials, both new
        await eventually(lambda: _denied() == before + 3, within=5)
        log.write_text("")  # truncated (copytruncate), then one more
        await asyncio.sleep(0.1)
        log.write_text(DENIED_LOG)
        await eventually(lambda: _denied() == before + 4, within=5)
    finally:
        stop.set()
        await task


def test_a_burst_is_read_in_bounded_steps_and_a_split_denial_found_once(tmp_path: Path) -> None:
    """A burst of the broker's lines (a backlog's delivery, logged packet by packet) is read a
    chunk at a time, not whole; a denial cut by a chunk's edge is found once, whole."""
    log = tmp_path / "mosquitto.log"
    log.write_text("")
    follower = _Follower(log, chunk_bytes=4096)
    assert follower.read() == ([], True)  # from the end: history is not counted
    denial = DENIED_LOG.splitlines()[1]
    noise = "1796564181: Received PUBACK from bench-d7f178-0 (Mid: 18924, RC:0)\n"
    before = noise * (8192 // len(noise))
    assert len(before) < 8192 < len(before) + len(denial)  # the denial crosses a chunk's edge
    with log.open("a") as fh:
        fh.write(before + denial + "\n" + noise * 300)
    found: list[str] = []
    steps = 0
    while True:
        lines, caught_up = follower.read()
        steps += 1
        found += lines
        assert len(follower.partial) <= 4096
        if caught_up:
            break
    assert steps == -(-log.stat().st_size // 4096)  # every step took one chunk at most
    assert [d.topic for d in denied_publishes(found)] == [
        d.topic for d in denied_publishes([denial])
    ]
