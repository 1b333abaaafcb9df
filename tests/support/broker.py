"""The broker in tests: gateway logins on the project's Mosquitto, an admin watcher and
publisher, and a private Mosquitto for tests that restart the broker or load it (the shared one
is left alone).

The private broker has the same settings as the project's broker where they matter (persistence, ``max_queued_messages 0``,
``max_inflight_messages 1000``); one plain listener on a free port with a password file and,
optionally, the project's ACL (server-side users read, each gateway writes only its own topics).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from carebeacon.broker import mosquitto_password_line, provision_gateway_credentials
from carebeacon.settings import Settings
from lab.services import mosquitto_command, render_mosquitto
from tests.support.network import free_port

__all__ = [
    "PROJECT_ACL",
    "Login",
    "PrivateBroker",
    "RenderedBroker",
    "Watcher",
    "admin_client",
    "clear_retained",
    "new_login",
    "publish_as_admin",
    "wait_login",
    "watching",
]

#: the project's ACL (``deploy/mosquitto/``, as ``carebeacon services`` renders it), for one
#: listener: ingest reads, admin reads and writes, a gateway publishes only under its own prefix
#: and reads its own config
_RENDERED = render_mosquitto(
    Path("/unused"), Settings(mqtt_ingest_user="ingest", mqtt_admin_user="admin")
)
PROJECT_ACL = _RENDERED["internal.acl"] + "\n" + _RENDERED["gateways.acl"]


class PrivateBroker:
    def __init__(self, users: dict[str, str], *, acl: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-broker-", dir="/tmp"))
        self.port = free_port()
        (self.dir / "data").mkdir()
        (self.dir / "passwd").write_text(
            "".join(mosquitto_password_line(u, p) + "\n" for u, p in users.items())
        )
        acl_line = ""
        if acl is not None:
            (self.dir / "acl").write_text(acl)
            acl_line = f"acl_file {self.dir}/acl\n"
        (self.dir / "mosquitto.conf").write_text(
            f"pid_file {self.dir}/mosquitto.pid\npersistence true\n"
            f"persistence_location {self.dir}/data/\nlog_dest file {self.dir}/log\n"
            "autosave_interval 10\n"
            "max_queued_messages 0\nmax_inflight_messages 1000\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.dir}/passwd\n{acl_line}"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mosquitto")
            self.dir.chmod(0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*mosquitto_command(), "-c", str(self.dir / "mosquitto.conf")]
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("private broker did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # graceful: Mosquitto writes its persistence file
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: what the broker acknowledged since its last autosave is gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RenderedBroker(PrivateBroker):
    """A private Mosquitto running the project's own configuration (``deploy/mosquitto/`` as
    :func:`lab.services.render_mosquitto` renders it): the internal listener for the server-side
    users and the TLS gateway listener (a self-signed certificate for 127.0.0.1), each with its
    password file and ACL. :attr:`settings` reach it (ports, CA, the server-side passwords);
    ``port`` is the internal listener's."""

    def __init__(self, base: Settings, gateways: dict[str, str], **overrides: Any) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-rendered-broker-", dir="/tmp"))
        self.port = free_port()
        self.tls_port = free_port()
        (self.dir / "data").mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.dir / "server.key"), "-out", str(self.dir / "server.crt")],
            check=True,
            capture_output=True,
        )  # fmt: skip
        shutil.copy(self.dir / "server.crt", self.dir / "ca.crt")
        self.settings = base.model_copy(
            update={
                "mqtt_host": "127.0.0.1",
                "mqtt_port": self.port,
                "mqtt_tls_port": self.tls_port,
                "mqtt_tls_bind": "127.0.0.1",
                "mqtt_ca_file": str(self.dir / "ca.crt"),
                "mqtt_ingest_password": SecretStr(secrets.token_urlsafe(18)),
                "mqtt_admin_password": SecretStr(secrets.token_urlsafe(18)),
                **overrides,
            }
        )
        s = self.settings
        internal = {
            s.mqtt_ingest_user: s.mqtt_ingest_password.get_secret_value(),
            s.mqtt_admin_user: s.mqtt_admin_password.get_secret_value(),
        }
        for name, users in (("internal.passwd", internal), ("gateways.passwd", gateways)):
            (self.dir / name).write_text(
                "".join(mosquitto_password_line(u, p) + "\n" for u, p in users.items())
            )
        for name, text in render_mosquitto(self.dir, s).items():
            (self.dir / name).write_text(text)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mosquitto")
            self.dir.chmod(0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*mosquitto_command(), "-c", str(self.dir / "mosquitto.conf")]
        )
        deadline = time.monotonic() + 10
        waiting = [self.port, self.tls_port]
        while waiting and time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", waiting[0])) == 0:
                    waiting.pop(0)
                    continue
            time.sleep(0.05)
        if waiting:
            log = self.dir / "mosquitto.log"
            raise AssertionError(
                f"rendered broker did not start: {log.read_text() if log.exists() else ''}"
            )

    def gateway_client(self, gateway_id: str, password: str, **options: Any) -> aiomqtt.Client:
        """A gateway's login on the TLS gateway listener (MQTT 5); ``options`` go to aiomqtt."""
        import ssl

        return aiomqtt.Client(
            "127.0.0.1",
            self.tls_port,
            username=gateway_id,
            password=password,
            tls_context=ssl.create_default_context(cafile=self.settings.mqtt_ca_file),
            protocol=aiomqtt.ProtocolVersion.V5,
            **options,
        )


# --- the project's Mosquitto ---------------------------------------------------------------


def admin_client(settings: Settings) -> aiomqtt.Client:
    """The server side's view of the project's Mosquitto: the admin login (reads and writes every
    gateway topic), MQTT 5, on the internal listener. Use it as ``async with``."""
    return aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    )


@dataclass(frozen=True)
class Login:
    gateway_id: str
    password: str


def new_login() -> Login:
    login = Login(f"gwt-{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(18))
    provision_gateway_credentials(login.gateway_id, login.password)
    return login


async def wait_login(settings: Settings, login: Login, deadline: float = 10.0) -> None:
    """The broker reloads its password file on SIGHUP: wait until the login works."""
    import ssl

    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        try:
            async with aiomqtt.Client(
                "127.0.0.1",
                settings.mqtt_tls_port,
                username=login.gateway_id,
                password=login.password,
                tls_context=ssl.create_default_context(cafile=settings.mqtt_ca_file),
                protocol=aiomqtt.ProtocolVersion.V5,
            ):
                return
        except aiomqtt.MqttError:
            if loop.time() > end:
                raise
            # another test may have rewritten the password file at the same moment
            provision_gateway_credentials(login.gateway_id, login.password)
            await asyncio.sleep(0.3)


async def clear_retained(settings: Settings, gateway_ids: Iterable[str]) -> None:
    """Publish an empty retained payload on each gateway's status and config topics: a retained
    status left on the shared broker reaches every ingest that subscribes later, which counts
    it as an unknown gateway's status in its own database's metrics."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return
    async with admin_client(settings) as client:
        for gateway_id in ids:
            for kind in ("status", "config"):
                await client.publish(
                    f"carebeacon/v1/gateways/{gateway_id}/{kind}", b"", qos=1, retain=True
                )


@dataclass
class Watcher:
    """The server's view: everything the gateway published, as the admin user sees it."""

    gateway_id: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def readings(self) -> list[dict[str, Any]]:
        return [reading for batch in self.batches for reading in batch["readings"]]

    @property
    def reading_ids(self) -> list[str]:
        return [reading["id"] for reading in self.readings]

    async def wait_for(self, predicate: Any, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def watching(settings: Settings, gateway_id: str) -> AsyncIterator[Watcher]:
    watcher = Watcher(gateway_id)
    async with admin_client(settings) as client:
        await client.subscribe(f"carebeacon/v1/gateways/{gateway_id}/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                body = json.loads(message.payload) if message.payload else {}
                if str(message.topic).endswith("/readings"):
                    watcher.batches.append(body)
                elif str(message.topic).endswith("/status"):
                    watcher.statuses.append(body)
                watcher.changed.set()

        task = asyncio.create_task(collect())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def publish_as_admin(
    settings: Settings, topic: str, payload: bytes, *, retain: bool = True
) -> None:
    async with admin_client(settings) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


# --- denied publishes (issue 17) ------------------------------------------------------------

# Mosquitto 2.0.21's own lines (log_type debug), as written for a denied publish and an
# accepted one
DENIED_LOG = """\
1796548959: Received PUBLISH from gw-a (d0, q1, r0, m1, 'carebeacon/v1/gateways/gw-b/readings', ... (12 bytes))
1796548959: Denied PUBLISH from gw-a (d0, q1, r0, m1, 'carebeacon/v1/gateways/gw-b/readings', ... (12 bytes))
1796548959: Sending PUBACK to gw-a (m1, rc0)
1796548960: Received PUBLISH from gw-a (d0, q1, r0, m2, 'carebeacon/v1/gateways/gw-a/readings', ... (12 bytes))
"""


def publish_311(broker: RenderedBroker, user: str, password: str, topic: str) -> int:
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
