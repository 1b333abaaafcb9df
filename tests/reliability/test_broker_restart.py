"""Mosquitto restarted during a stream: persistent sessions and queued QoS 1 messages survive,
every reading is stored exactly once. Uses a private broker so that nothing else is disturbed.

With a plain subscription (the default for one ingest process). Mosquitto 2.0.11 does not
restore *shared* subscriptions after a restart: what gateways publish before the ingest
processes resubscribe has no subscriber and is dropped (measured: 100 of 100 lost in this test
with a share group) — see the README's scaling notes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from alerts import evaluate_readings
from carebeacon.services import mosquitto_password_line
from ingest.service import IngestConfig, run
from tests.ingest.conftest import Home, batch, bp_reading, count, topic, wait_for

pytestmark = [pytest.mark.db, pytest.mark.broker]


class PrivateBroker:
    def __init__(self, users: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-broker-", dir="/tmp"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (self.dir / "data").mkdir()
        (self.dir / "passwd").write_text(
            "".join(mosquitto_password_line(u, p) + "\n" for u, p in users.items())
        )
        (self.dir / "mosquitto.conf").write_text(
            f"pid_file {self.dir}/mosquitto.pid\npersistence true\n"
            f"persistence_location {self.dir}/data/\nlog_dest file {self.dir}/log\n"
            "max_queued_messages 0\nmax_inflight_messages 1000\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.dir}/passwd\n"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mosquitto")
            self.dir.chmod(0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.dir / "mosquitto.conf")])
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            subprocess.run(["sleep", "0.05"], check=True)
        raise AssertionError("private broker did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # graceful: Mosquitto writes its persistence file
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    b = PrivateBroker({"ingest": "ingest-pw", "admin": "admin-pw"})
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


async def test_broker_restart_mid_stream(
    ingest_config: IngestConfig, broker: PrivateBroker, database: str, home: Home
) -> None:
    settings = dataclasses.replace(
        ingest_config.settings,
        mqtt_port=broker.port,
        mqtt_ingest_user="ingest",
        mqtt_ingest_password="ingest-pw",
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
        await wait_for(lambda: stored() == 500, within=30)
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
