"""What the broker keeps over a restart and loses in a crash: Debian 12's Mosquitto 2.0.11 (the
project's broker, ``lab.services.mosquitto_command``) against trixie's 2.0.21, on private
brokers.

- With ``per_listener_settings true`` (the project's two listeners have their own logins and
  ACLs) 2.0.21 queues nothing for an offline persistent session (mosquitto#2618, every release
  since 2.0.12): an ingest that is down would lose every reading. 2.0.11 queues them. This
  decides the version.
- Persistent sessions: messages queued while a subscriber is away survive a clean restart.
- Shared subscriptions (``$share/…``) are *not* restored by either version: after a restart a
  message for the group has no subscriber until the members subscribe again; an MQTT 5
  publisher is told so in its PUBACK (reason code 16, "no matching subscribers").
- A SIGKILL loses what the broker acknowledged after its last save; how much depends on
  ``autosave_interval`` / ``autosave_on_changes`` (the slow matrix prints the table).
"""

from __future__ import annotations

import collections
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lab.services import mosquitto_command, trixie_mosquitto_command
from tests.support.network import free_port

pytestmark = pytest.mark.broker

PROJECT_PERSISTENCE = "autosave_interval 10\n"
NO_MATCHING_SUBSCRIBERS = 16  # MQTT 5.0, 3.4.2.1


PROJECT = "debian12 2.0.11 (project)"
TRIXIE = "trixie 2.0.21"


def _versions() -> dict[str, list[str]]:
    return {PROJECT: mosquitto_command(), TRIXIE: trixie_mosquitto_command()}


class Broker:
    """A bare broker: persistence on, one anonymous listener, ``persistence`` settings (and
    any other global lines)."""

    def __init__(self, command: list[str], persistence: str) -> None:
        self.command = command
        self.dir = Path(tempfile.mkdtemp(prefix="cb-versions-", dir="/tmp"))
        self.port = free_port()
        (self.dir / "data").mkdir()
        (self.dir / "mosquitto.conf").write_text(
            f"persistence true\npersistence_location {self.dir}/data/\n{persistence}"
            f"log_dest file {self.dir}/log\nmax_queued_messages 0\nmax_inflight_messages 1000\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mosquitto")
            self.dir.chmod(0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([*self.command, "-c", str(self.dir / "mosquitto.conf")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("broker did not start")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(10)
        self.process = None

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def remove(self) -> None:
        if self.process is not None:
            self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _subscriber(port: int, client_id: str, topic: str | None) -> tuple[mqtt.Client, list[bytes]]:
    """A persistent MQTT 5 session (clean start off, an hour's expiry); subscribes to ``topic``
    when given, else relies on the session's subscriptions."""
    got: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: got.append(bytes(message.payload))
    client.on_subscribe = lambda *args: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    if topic is not None:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5)
    return client, got


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


class Publisher:
    """QoS 1, MQTT 5, pipelined; keeps each PUBACK's reason code by payload. The PUBACK callback
    runs in paho's thread under paho's own lock: it only appends, and never waits for ours."""

    def __init__(self, port: int, broker: Broker | None = None, kill_after: int = 0) -> None:
        self.results: collections.deque[tuple[int, int]] = collections.deque()
        self.mids: dict[int, bytes] = {}
        self.broker, self.kill_after = broker, kill_after
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.results.append((mid, reason.value))
        process = self.broker.process if self.broker is not None else None
        killing = self.kill_after and len(self.results) >= self.kill_after
        if killing and process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)  # right after this PUBACK

    @property
    def codes(self) -> dict[bytes, int]:
        return {self.mids[mid]: code for mid, code in list(self.results)}

    def send(self, prefix: str, n: int) -> dict[bytes, int]:
        expected = len(self.mids) + n
        for i in range(n):
            payload = f"{prefix}-{i}".encode()
            info = self.client.publish("t/x", payload, qos=1)
            self.mids[info.mid] = payload
        deadline = time.monotonic() + 60
        while len(self.results) < expected and time.monotonic() < deadline:
            if self.kill_after and len(self.results) >= self.kill_after:
                break
            time.sleep(0.01)
        return self.codes

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(params=list(_versions()))
def version(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    return request.param, _versions()[request.param]


def _collect(got: list[bytes], expected: int, within: float = 5.0) -> set[bytes]:
    deadline = time.monotonic() + within
    while len(set(got)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return set(got)


def _count(payloads: set[bytes], prefix: bytes) -> int:
    return sum(1 for p in payloads if p.startswith(prefix))


def test_restart_keeps_sessions_but_not_shared_subscriptions(
    version: tuple[str, list[str]],
) -> None:
    name, command = version
    broker = Broker(command, PROJECT_PERSISTENCE)
    broker.start()
    try:
        plain, _ = _subscriber(broker.port, "plain", "t/#")
        shared, _ = _subscriber(broker.port, "shared", "$share/g/t/#")
        _close(plain)
        _close(shared)
        publisher = Publisher(broker.port)
        queued = publisher.send("before", 50)  # both sessions away: queued for each
        publisher.close()
        broker.restart()
        publisher = Publisher(broker.port)
        codes = publisher.send("after", 50)  # after the restart, before anyone reconnects
        publisher.close()
        plain, plain_got = _subscriber(broker.port, "plain", None)
        shared, shared_got = _subscriber(broker.port, "shared", None)
        plain_kept = _collect(plain_got, 100)
        shared_kept = _collect(shared_got, 100, within=2.0)
        _close(plain)
        _close(shared)
    finally:
        broker.remove()
    after = {p: c for p, c in codes.items() if p.startswith(b"after")}
    print(
        f"\n{name}: queued before the restart, kept: plain {len(plain_kept & set(queued))}/50,"
        f" shared {len({p for p in shared_kept if p.startswith(b'before')})}/50;"
        f" published after the restart: plain got {_count(plain_kept, b'after')}/50,"
        f" shared got {_count(shared_kept, b'after')}/50"
    )
    assert plain_kept == set(queued) | set(after)  # the plain session kept everything
    assert {p for p in shared_kept if p.startswith(b"before")} == {
        p for p in queued if p.startswith(b"before")
    }  # what was queued for the shared member survives
    # the shared subscription itself did not: nothing published after the restart reached the
    # member; the plain subscription still matched, so the PUBACK said 0 (delivered to one)
    assert not {p for p in shared_kept if p.startswith(b"after")}
    assert set(after.values()) == {0}


def test_publish_into_a_group_lost_in_a_restart_is_refused_as_no_subscribers(
    version: tuple[str, list[str]],
) -> None:
    name, command = version
    broker = Broker(command, PROJECT_PERSISTENCE)
    broker.start()
    try:
        member, _ = _subscriber(broker.port, "member", "$share/g/t/#")
        _close(member)
        publisher = Publisher(broker.port)
        before = publisher.send("before", 10)
        publisher.close()
        broker.restart()
        publisher = Publisher(broker.port)
        codes = publisher.send("after", 10)
        publisher.close()
    finally:
        broker.remove()
    after = {c for p, c in codes.items() if p.startswith(b"after")}
    print(f"\n{name}: PUBACK before the restart {set(before.values())}, after {after}")
    assert set(before.values()) == {0}
    assert after == {NO_MATCHING_SUBSCRIBERS}


def test_offline_session_queue_with_per_listener_settings(version: tuple[str, list[str]]) -> None:
    """The project's configuration has ``per_listener_settings true``: a persistent session
    that is offline (ingest down) must still get what is published meanwhile."""
    name, command = version
    broker = Broker(command, "per_listener_settings true\n" + PROJECT_PERSISTENCE)
    broker.start()
    try:
        away, _ = _subscriber(broker.port, "ingest-like", "t/#")
        _close(away)
        publisher = Publisher(broker.port)
        codes = publisher.send("offline", 100)
        publisher.close()
        back, got = _subscriber(broker.port, "ingest-like", None)
        kept = _collect(got, 100, within=3.0)
        _close(back)
    finally:
        broker.remove()
    print(f"\n{name}: per_listener_settings true, offline session got {len(kept)} of 100")
    assert set(codes.values()) == {0}  # the broker acknowledged every one
    if name == PROJECT:
        assert kept == set(codes)
    else:
        assert kept == set()  # mosquitto#2618: when this fails, re-measure and reconsider


SETTINGS = {
    "autosave_interval 30 (before)": "autosave_interval 30\n",
    "autosave_interval 1": "autosave_interval 1\n",
    "on_changes, interval 1": "autosave_on_changes true\nautosave_interval 1\n",
    "on_changes, interval 10": "autosave_on_changes true\nautosave_interval 10\n",
    "on_changes, interval 100": "autosave_on_changes true\nautosave_interval 100\n",
    "autosave_interval 10 (chosen)": PROJECT_PERSISTENCE,
}


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("mid_stream", [False, True], ids=["after-last-ack", "mid-stream"])
def test_sigkill_loses_what_was_acknowledged_after_the_last_save(
    version: tuple[str, list[str]], setting: str, mid_stream: bool
) -> None:
    """Prints acknowledged / lost for one version and setting (no assertion on the figure: it
    depends on where the kill falls between two saves)."""
    name, command = version
    total = 2000
    broker = Broker(command, SETTINGS[setting])
    broker.start()
    try:
        away, _ = _subscriber(broker.port, "away", "t/#")
        _close(away)
        publisher = Publisher(broker.port, broker, kill_after=total // 2 if mid_stream else total)
        started = time.monotonic()
        publisher.send("k", total)
        took = time.monotonic() - started
        acked = {p for p, c in publisher.codes.items() if c == 0}
        publisher.client.loop_stop()
        if broker.process is not None:
            broker.process.wait(10)
        broker.process = None
        broker.start()
        back, got = _subscriber(broker.port, "away", None)
        kept = _collect(got, len(acked), within=5.0)
        _close(back)
    finally:
        broker.remove()
    lost = len(acked - kept)
    print(
        f"\n{name} | {setting} | kill {'mid-stream' if mid_stream else 'after the last ack'}"
        f" | acknowledged {len(acked)} | lost {lost} | {len(acked) / took:.0f} msg/s"
    )
    assert len(acked) > 0
