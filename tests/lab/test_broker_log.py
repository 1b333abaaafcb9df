"""Denied publishes made visible: a gateway's MQTT 3.1.1 publish to another gateway's topic is
acknowledged by the broker and dropped; the broker's log (the project's configuration, on a
private broker) holds the one trace, which :mod:`lab.broker_log` reads."""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from carebeacon.settings import Settings
from lab.broker_log import DeniedPublish, denied_publishes, summary
from tests.support.broker import RenderedBroker

pytestmark = pytest.mark.broker

# Mosquitto 2.0.21's own lines (log_type debug), as written for a denied publish and an
# accepted one
LOG = """\
1796548959: Received PUBLISH from gw-a (d0, q1, r0, m1, 'carebeacon/v1/gateways/gw-b/readings', ... (12 bytes))
1796548959: Denied PUBLISH from gw-a (d0, q1, r0, m1, 'carebeacon/v1/gateways/gw-b/readings', ... (12 bytes))
1796548959: Sending PUBACK to gw-a (m1, rc0)
1796548960: Received PUBLISH from gw-a (d0, q1, r0, m2, 'carebeacon/v1/gateways/gw-a/readings', ... (12 bytes))
"""


def test_denied_lines_are_read_and_others_skipped() -> None:
    assert list(denied_publishes(LOG.splitlines())) == [
        DeniedPublish(
            at=datetime.fromtimestamp(1796548959, UTC),
            client_id="gw-a",
            topic="carebeacon/v1/gateways/gw-b/readings",
            qos=1,
            retain=False,
            payload_bytes=12,
        )
    ]


@pytest.fixture
def rendered_broker() -> Iterator[tuple[RenderedBroker, dict[str, str]]]:
    gateways = {"gw-a": secrets.token_urlsafe(12), "gw-b": secrets.token_urlsafe(12)}
    broker = RenderedBroker(Settings(), gateways)
    broker.start()
    yield broker, gateways
    broker.remove()


def _publish_311(broker: RenderedBroker, user: str, password: str, topic: str) -> int:
    """Publish as a 3.1.1 gateway on the TLS listener; the PUBACK's mid (3.1.1: no reason)."""
    acked: list[int] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
    client.username_pw_set(user, password)
    assert broker.settings.mqtt_ca_file is not None
    client.tls_set_context(ssl.create_default_context(cafile=str(broker.settings.mqtt_ca_file)))

    def on_publish(client: mqtt.Client, userdata: object, mid: int, *rest: object) -> None:
        acked.append(mid)
        done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.tls_port)
    client.loop_start()
    try:
        client.publish(topic, b'{"x": 1}', qos=1)
        assert done.wait(10), "no PUBACK"
    finally:
        client.loop_stop()
        client.disconnect()
    return len(acked)


def test_a_311_publish_to_a_foreign_topic_is_acknowledged_and_logged(
    rendered_broker: tuple[RenderedBroker, dict[str, str]],
) -> None:
    broker, gateways = rendered_broker
    foreign = "carebeacon/v1/gateways/gw-b/readings"
    own = "carebeacon/v1/gateways/gw-a/readings"
    assert _publish_311(broker, "gw-a", gateways["gw-a"], foreign) == 1  # acknowledged
    assert _publish_311(broker, "gw-a", gateways["gw-a"], own) == 1
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
    log.write_text(LOG.splitlines()[0] + "\n")
    assert summary(log).startswith("no denied publishes")
