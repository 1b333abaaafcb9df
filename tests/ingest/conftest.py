"""Ingest fixtures: a registered organisation, a publisher on the real broker, ingest running."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest

from alerts import evaluate_readings
from carebeacon.settings import Settings
from ingest.service import IngestConfig, run


@dataclass(frozen=True)
class Home:
    """One patient at home: a gateway, a BP cuff and a scale assigned to them, consent on file."""

    gateway_id: str
    patient_id: uuid.UUID
    cuff_id: str
    scale_id: str


def register_home(conninfo: str, *, consent: bool = True) -> Home:
    tag = uuid.uuid4().hex[:8]
    home = Home(f"gw-{tag}", uuid.uuid4(), f"cuff-{tag}", f"scale-{tag}")
    since = datetime.now(UTC) - timedelta(days=30)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO sites (id, name) VALUES ('site-a', 'Site A') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO programs (id, name, template) VALUES ('htn', 'Hypertension', 'hypertension')"
            " ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO patients (id, display_name, site_id) VALUES (%s, %s, 'site-a')",
            (home.patient_id, f"Test Patient {tag}"),
        )
        conn.execute(
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at, consent_given_at)"
            " VALUES (%s, 'htn', 'site-a', %s, %s)",
            (home.patient_id, since, since if consent else None),
        )
        conn.execute("INSERT INTO gateways (id) VALUES (%s)", (home.gateway_id,))
        conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (home.gateway_id, home.patient_id),
        )
        for device_id, kind in (
            (home.cuff_id, "blood_pressure_monitor"),
            (home.scale_id, "weight_scale"),
        ):
            conn.execute("INSERT INTO devices (id, type) VALUES (%s, %s)", (device_id, kind))
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, valid_from) VALUES (%s, %s, %s)",
                (device_id, home.patient_id, since),
            )
    return home


def bp_reading(
    device_id: str,
    *,
    systolic: float = 138.0,
    diastolic: float = 88.0,
    measured_at: datetime | None = None,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    measured = measured_at if measured_at is not None else now.replace(tzinfo=None, microsecond=0)
    return {
        "id": str(uuid.uuid4()),
        "device": {
            "id": device_id,
            "type": "blood_pressure_monitor",
            "manufacturer": "Acme",
            "model": "C1",
        },
        "type": "blood_pressure",
        "measured_at": measured.isoformat(),
        "received_at": now.isoformat(),
        "sequence": None,
        "user_index": 1,
        "values": [
            {"code": "systolic", "value": systolic, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": diastolic, "unit": "mm[Hg]"},
            {"code": "pulse", "value": 61.0, "unit": "/min"},
        ],
        "flags": flags or [],
        "raw": {"characteristic": "2a35", "hex": "00"},
    }


def batch(gateway_id: str, readings: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "schema": "carebeacon.readings/1",
            "gateway_id": gateway_id,
            "sent_at": datetime.now(UTC).isoformat(),
            "timezone": "UTC",
            "readings": readings,
        }
    ).encode()


def topic(gateway_id: str, kind: str = "readings") -> str:
    return f"carebeacon/v1/gateways/{gateway_id}/{kind}"


def count(conninfo: str, sql: str, *params: Any) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


async def wait_for(predicate: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def share_group() -> str:
    """Each test session consumes in its own share group (other sessions may run beside it)."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ingest_config(settings: Settings, database: str, share_group: str) -> IngestConfig:
    dbname = database.rsplit("/", 1)[1]
    return IngestConfig(
        settings=settings.model_copy(update={"pg_database": dbname}),
        client_id=f"ingest-{share_group}",
        share_group=share_group,
        session_expiry_seconds=600,
    )


@pytest.fixture
async def ingest_running(ingest_config: IngestConfig) -> AsyncIterator[IngestConfig]:
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


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        yield client


@pytest.fixture
def home(database: str) -> Home:
    return register_home(database)
