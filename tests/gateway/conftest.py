"""Gateway fixtures: a fresh broker login per test, an admin watcher, config files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from carebeacon.broker import provision_gateway_credentials
from carebeacon.settings import Settings
from gateway.config import GatewayConfig, load_config


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
    status left on the shared broker reaches every ingest that subscribes later, which
    quarantines it as ``unknown_gateway`` in its own database."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        for gateway_id in ids:
            for kind in ("status", "config"):
                await client.publish(
                    f"carebeacon/v1/gateways/{gateway_id}/{kind}", b"", qos=1, retain=True
                )


@pytest.fixture
async def retained_topics(settings: Settings) -> AsyncIterator[set[str]]:
    """Add a gateway id: its retained topics on the shared broker are cleared after the test
    (the gateways have stopped by then: a clean stop publishes its retained ``offline``)."""
    gateway_ids: set[str] = set()
    yield gateway_ids
    await clear_retained(settings, gateway_ids)


@pytest.fixture
async def login(settings: Settings, retained_topics: set[str]) -> Login:
    created = new_login()
    retained_topics.add(created.gateway_id)
    await wait_login(settings, created)
    return created


def write_config(
    directory: Path,
    login: Login,
    settings: Settings,
    *,
    port: int | None = None,
    devices: list[dict[str, str]] | None = None,
    extra: str = "",
    state_dir: Path | None = None,
) -> Path:
    (directory / "password").write_text(login.password + "\n", encoding="utf-8")
    lines = [
        f'gateway_id = "{login.gateway_id}"',
        f'state_dir = "{state_dir or directory / "state"}"',
        'timezone = "Europe/Berlin"',
        "status_interval = 5",
        extra,
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {port or settings.mqtt_tls_port}",
        f'ca_file = "{settings.mqtt_ca_file}"',
        'password_file = "password"',
        "publish_timeout = 5",
        "[ble]",
        "reconnect_base = 0.2",
        "reconnect_cap = 2.0",
        "revisit_seconds = 0.5",
        "connect_timeout = 5.0",
    ]
    for device in devices or []:
        lines.append("[[devices]]")
        lines += [f'{key} = "{value}"' for key, value in device.items()]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_config(directory: Path, login: Login, settings: Settings, **kwargs: Any) -> GatewayConfig:
    return load_config(write_config(directory, login, settings, **kwargs), environ={})


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
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
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
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def eventually(predicate: Any, within: float = 10.0, step: float = 0.05) -> None:
    """Poll state owned by the code under test until ``predicate()`` holds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(step)


@pytest.fixture
async def air() -> AsyncIterator[Any]:
    from lab.emulation import EmulatedAir

    async with EmulatedAir() as emulated_air:
        yield emulated_air


@contextlib.asynccontextmanager
async def gateway_running(config: GatewayConfig, air: Any) -> AsyncIterator[asyncio.Task[None]]:
    """The real gateway (:func:`gateway.service.run`) with the emulated backends injected."""
    from gateway.service import run

    stop = asyncio.Event()
    task = asyncio.create_task(
        run(
            config,
            scanner_backend=air.scanner_backend,
            client_backend=air.client_backend,
            stop=stop,
        )
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def read_state(config: GatewayConfig) -> Any:
    """A read-only look at the gateway's database (after it stopped)."""
    from gateway import Outbox

    return Outbox(config.state_dir / "gateway.sqlite3", max_readings=config.outbox.max_readings)
