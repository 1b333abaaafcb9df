"""Denied publishes made visible: a gateway's MQTT 3.1.1 publish to another gateway's topic is
acknowledged by the broker and dropped; the broker's log (the project's configuration, on a
private broker) holds the one trace, which :mod:`lab.broker_log` reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lab.broker_log import DeniedPublish, denied_publishes, summary
from tests.support.broker import DENIED_LOG, RenderedBroker, publish_311

pytestmark = pytest.mark.broker


def test_denied_lines_are_read_and_others_skipped() -> None:
    assert list(denied_publishes(DENIED_LOG.splitlines())) == [
        DeniedPublish(
            at=datetime.fromtimestamp(1796548959, UTC),
            client_id="gw-a",
            topic="carebeacon/v1/gateways/gw-b/readings",
            qos=1,
            retain=False,
            payload_bytes=12,
        )
    ]


def test_a_311_publish_to_a_foreign_topic_is_acknowledged_and_logged(
    rendered_broker: tuple[RenderedBroker, dict[str, str]],
) -> None:
    broker, gateways = rendered_broker
    foreign = "carebeacon/v1/gateways/gw-b/readings"
    own = "carebeacon/v1/gateways/gw-a/readings"
    assert publish_311(broker, "gw-a", gateways["gw-a"], foreign) == 1  # acknowledged
    assert publish_311(broker, "gw-a", gateways["gw-a"], own) == 1
    log = broker.dir / "mosquitto.log"
    deadline = time.monotonic() + 5
    found: list[DeniedPublish] = []
    while not found and time.monotonic() < deadline:
        found = list(denied_publishes(log.read_text(encoding="utf-8").splitlines()))
        time.sleep(0.05)
    assert [(d.client_id, d.topic, d.payload_bytes) for d in found] == [("gw-a", foreign, 8)]
    assert f"gw-a  {foreign}" in summary(log)
    assert own not in summary(log)


def test_summary_of_a_quiet_log(tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text(DENIED_LOG.splitlines()[0] + "\n")
    assert summary(log).startswith("no denied publishes")
