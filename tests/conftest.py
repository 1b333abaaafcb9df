"""Shared fixtures: the project's real TimescaleDB and Mosquitto (``carebeacon services up``),
ingest running against them, a registered home, an emulated radio, the web app served."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from carebeacon.settings import Settings
from lab.services import forget_ingest_session

if TYPE_CHECKING:
    from ingest.service import IngestConfig
    from lab.emulation import EmulatedAir
    from tests.support.broker import RenderedBroker
    from tests.support.homes import Home
    from tests.support.web import Server


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped afterwards. Yields its conninfo."""
    from tests.support.db import scratch_database

    with scratch_database(settings) as conninfo:
        yield conninfo


@pytest.fixture(scope="session")
def share_group() -> str:
    """Each test session consumes in its own share group (other sessions may run beside it)."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ingest_config(settings: Settings, database: str, share_group: str) -> IngestConfig:
    from ingest.service import IngestConfig

    dbname = database.rsplit("/", 1)[1]
    return IngestConfig(
        settings=settings.model_copy(update={"pg_database": dbname}),
        client_id=f"ingest-{share_group}",
        share_group=share_group,
        # long enough for a test to restart ingest, short enough that a session a test leaves
        # behind does not queue a later benchmark's messages on the shared broker for long
        session_expiry_seconds=120,
    )


@pytest.fixture
async def ingest_running(ingest_config: IngestConfig) -> AsyncIterator[IngestConfig]:
    from alerts import evaluate_readings
    from ingest.service import run

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run(ingest_config, evaluate=evaluate_readings, stop=stop, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield ingest_config
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        # the session would queue every later message on the shared broker (benchmarks too)
        # for its expiry, and the broker would write them all out at every save
        await forget_ingest_session(ingest_config.settings, ingest_config.client_id)


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[aiomqtt.Client]:
    """The admin login on the project's Mosquitto (publishes as any gateway)."""
    from tests.support.broker import admin_client

    async with admin_client(settings) as client:
        yield client


@pytest.fixture
def home(database: str) -> Home:
    from tests.support.homes import register_home

    return register_home(database)


@pytest.fixture
async def air() -> AsyncIterator[EmulatedAir]:
    """An emulated radio (bumble): add devices, hand its backends to bleak or the gateway."""
    from lab.emulation import EmulatedAir

    async with EmulatedAir() as emulated_air:
        yield emulated_air


@pytest.fixture(scope="session")
def server(settings: Settings, database: str) -> Iterator[Server]:
    """The web app served over HTTP on the session's database, with two sites (A and B) and
    one user per role on each (``seed_demo``, password :data:`PASSWORD`)."""
    from lab.seed import seed_demo
    from tests.support.web import PASSWORD, SITE_A, SITE_B, Server, serving
    from web.app import create_app

    seed_demo(database, site_id=SITE_A, site_name="Site A", program_id="wt-htn", password=PASSWORD)
    seed_demo(
        database,
        site_id=SITE_B,
        site_name="Site B",
        timezone="UTC",
        program_id="wt-htn",
        password=PASSWORD,
    )
    provisioned: list[tuple[str, str]] = []
    app = create_app(
        settings,
        conninfo=database,
        provision_gateway=lambda gw, pw: provisioned.append((gw, pw)),
    )
    with serving(app) as url:
        yield Server(url, database, provisioned)


@pytest.fixture
def rendered_broker() -> Iterator[tuple[RenderedBroker, dict[str, str]]]:
    """A private broker with the project's configuration and two gateway logins, gw-a and gw-b
    (``{id: password}``)."""
    from tests.support.broker import RenderedBroker

    gateways = {"gw-a": secrets.token_urlsafe(12), "gw-b": secrets.token_urlsafe(12)}
    broker = RenderedBroker(Settings(), gateways)
    broker.start()
    yield broker, gateways
    broker.remove()
