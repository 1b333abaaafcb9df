"""Scale-out: two ``carebeacon ingest`` processes on one shared subscription
(``CAREBEACON_INGEST_SHARE_GROUP``), a private Mosquitto with the project's binary and
persistence settings, and a gateway streaming readings while the broker restarts, crashes and
one ingest process is SIGKILLed. Counted by reading id: stored, lost, duplicated.

Measured (``README``, Services): Mosquitto (2.0.11 and 2.0.21 alike) does not restore shared
subscriptions after a restart, so until the ingest processes resubscribe a reading has no
subscriber: the broker drops it and says so to an MQTT 5 publisher in the PUBACK (reason code
16, "no matching subscribers"). The gateway here keeps such a reading and sends it again, as it
does a refused one. A broker *crash* also drops what it acknowledged after its last save: that
is recovered only by the end-to-end receipts (issue 19), which the resend of the unreceipted
readings stands in for in the crash test."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import PrivateBroker
from tests.support.db import count
from tests.support.end_to_end import IngestProcess
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]

NO_MATCHING_SUBSCRIBERS = 16  # MQTT 5.0, 3.4.2.1: PUBACK reason code 0x10


class Gateway(threading.Thread):
    """One reading per message, QoS 1, MQTT 5, at ``rate`` a second. A reading leaves the
    outbox on a PUBACK with reason code 0; "no matching subscribers" (16), a refusal or a lost
    connection put it back to be sent again half a second later. Each connection is a new
    client (clean start), so nothing is retransmitted behind the outbox's back."""

    def __init__(self, port: int, home: Home, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        assert home.password is not None
        self.port, self.home, self.rate = port, home, rate
        self.readings = {}
        for _ in range(total):
            reading = bp_reading(home.cuff_id)
            self.readings[reading["id"]] = reading
        self.to_send: collections.deque[tuple[float, str]] = collections.deque(
            (0.0, reading_id) for reading_id in self.readings
        )
        self.accepted: set[str] = set()
        self.no_subscribers = 0
        self.publishes = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def resend(self, reading_ids: set[str]) -> None:
        with self.lock:
            self.accepted -= reading_ids
            self.to_send.extend((0.0, reading_id) for reading_id in sorted(reading_ids))

    @property
    def done(self) -> bool:
        with self.lock:
            return len(self.accepted) == len(self.readings)

    def _settle(
        self, inflight: dict[int, str], results: collections.deque[tuple[int, int]]
    ) -> None:
        """Apply the PUBACKs that arrived (a PUBACK may arrive before its mid is recorded: it
        waits in ``results`` until then)."""
        early = []
        while results:
            mid, code = results.popleft()
            reading_id = inflight.pop(mid, None)
            if reading_id is None:
                early.append((mid, code))
                continue
            with self.lock:
                if code == 0:
                    self.accepted.add(reading_id)
                    continue
                if code == NO_MATCHING_SUBSCRIBERS:
                    self.no_subscribers += 1
                self.to_send.append((time.monotonic() + 0.5, reading_id))
        results.extend(early)

    def _connection(self) -> None:
        inflight: dict[int, str] = {}
        # paho calls on_publish in its thread holding its own lock: only append there
        results: collections.deque[tuple[int, int]] = collections.deque()
        lost = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.home.gateway_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.home.gateway_id, self.home.password)
        client.on_publish = lambda c, u, mid, reason, props: results.append((mid, reason.value))
        client.on_disconnect = lambda *args: lost.set()
        try:
            client.connect("127.0.0.1", self.port, keepalive=5)
        except OSError:
            time.sleep(0.02)  # one of many gateways: some are back the moment the broker is
            return
        client.loop_start()
        try:
            while not self.stop.is_set() and not lost.is_set():
                self._settle(inflight, results)
                with self.lock:
                    ready = bool(self.to_send) and self.to_send[0][0] <= time.monotonic()
                    if ready:
                        _, reading_id = self.to_send.popleft()
                if not ready:
                    time.sleep(0.02)
                    continue
                payload = batch(self.home.gateway_id, [self.readings[reading_id]])
                info = client.publish(topic(self.home.gateway_id), payload, qos=1)
                self.publishes += 1
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    with self.lock:
                        self.to_send.append((time.monotonic() + 0.5, reading_id))
                else:
                    inflight[info.mid] = reading_id
                time.sleep(1 / self.rate)
        finally:
            client.loop_stop()
            client.disconnect()
            self._settle(inflight, results)
            with self.lock:  # no PUBACK: still in the outbox
                self.to_send.extend((0.0, reading_id) for reading_id in inflight.values())

    def run(self) -> None:
        while not self.stop.is_set():
            self._connection()


def _stored(database: str, gateway: Gateway) -> tuple[int, int]:
    """Distinct readings stored, and value rows (three per reading when none is doubled)."""
    ids = list(gateway.readings)
    receipts = count(
        database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s::uuid[])", ids
    )
    values = count(
        database, "SELECT count(*) FROM readings WHERE reading_id = ANY(%s::uuid[])", ids
    )
    return receipts, values


def _report(name: str, gateway: Gateway, stored: int, values: int, extra: str = "") -> None:
    print(
        f"\n{name}: sent {len(gateway.readings)}, publishes {gateway.publishes}, PUBACK 'no"
        f" matching subscribers' {gateway.no_subscribers}, stored {stored}, lost"
        f" {len(gateway.readings) - stored}, duplicated {values // 3 - stored}{extra}"
    )


async def test_broker_restart_and_ingest_sigkill_with_two_processes(
    database: str,
    shared_broker: PrivateBroker,
    shared_ingests: list[IngestProcess],
    gateway_home: Home,
) -> None:
    first, second = shared_ingests
    broker, home = shared_broker, gateway_home
    await first.start_connected()
    await second.start_connected()
    gateway = Gateway(broker.port, home, total=900, rate=150)
    gateway.start()
    try:
        await asyncio.sleep(1.5)
        # a clean restart, and ingest slow to come back (its reconnect backoff grows to 30 s):
        # the broker restores the ingest sessions but not their shared subscriptions
        for process in shared_ingests:
            os.kill(process.pid, signal.SIGSTOP)
        broker.stop()
        await asyncio.sleep(0.5)
        broker.start()
        await asyncio.sleep(1.0)  # the gateway publishes into a group with no subscription
        for process in shared_ingests:
            os.kill(process.pid, signal.SIGCONT)
        await asyncio.sleep(1.5)
        first.kill()  # mid-stream: what it received and had not committed is redelivered
        await asyncio.sleep(1.0)
        await first.start_connected()
        await eventually(lambda: gateway.done, within=60)
        await eventually(lambda: _stored(database, gateway)[0] == len(gateway.readings), 60)
        await asyncio.sleep(1.0)  # anything redelivered late would show as a duplicate now
    finally:
        gateway.stop.set()
        gateway.join(10)
    stored, values = _stored(database, gateway)
    _report("broker restart + ingest SIGKILL, 2 processes", gateway, stored, values)
    assert gateway.no_subscribers > 0  # the restart's window was hit
    assert stored == len(gateway.readings)
    assert values == 3 * stored
    assert first.kills == 1
    assert first.connections() >= 3  # started, reconnected after the restart, restarted
    assert second.connections() >= 2


async def test_broker_crash_with_two_processes(
    database: str,
    shared_broker: PrivateBroker,
    shared_ingests: list[IngestProcess],
    gateway_home: Home,
) -> None:
    broker, home = shared_broker, gateway_home
    for process in shared_ingests:
        await process.start_connected()
    gateway = Gateway(broker.port, home, total=900, rate=150)
    gateway.start()
    try:
        await asyncio.sleep(1.5)
        # ingest falls behind (frozen): the broker queues the readings for its sessions
        for process in shared_ingests:
            os.kill(process.pid, signal.SIGSTOP)
        await asyncio.sleep(1.0)
        broker.kill()  # SIGKILL: what it acknowledged since its last save is gone
        await asyncio.sleep(0.5)
        broker.start()
        for process in shared_ingests:
            os.kill(process.pid, signal.SIGCONT)
        await eventually(lambda: gateway.done, within=60)
        await asyncio.sleep(3.0)  # the ingest processes drain what the broker kept

        def unstored() -> set[str]:
            ids = list(gateway.readings)
            found = {
                str(row)
                for row in _column(
                    database, "SELECT id FROM reading_receipts WHERE id = ANY(%s::uuid[])", ids
                )
            }
            return set(ids) - found

        lost_by_broker = unstored()
        # the end-to-end receipt's timeout: what has no receipt is sent again (same ids)
        gateway.resend(lost_by_broker)
        await eventually(lambda: gateway.done, within=60)
        await eventually(lambda: not unstored(), within=60)
        await asyncio.sleep(1.0)
    finally:
        gateway.stop.set()
        gateway.join(10)
    stored, values = _stored(database, gateway)
    _report(
        "broker SIGKILL, 2 processes",
        gateway,
        stored,
        values,
        f"; acknowledged by the broker and lost before the receipts' resend {len(lost_by_broker)}",
    )
    assert stored == len(gateway.readings)
    assert values == 3 * stored


def _column(conninfo: str, sql: str, *params: Any) -> list[Any]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute(sql, params)]
