"""Issue 16: release after fix. A reading quarantined because of its configuration (here: its
device was registered but assigned to the patient only later) is stored once the supervisor
releases it after the fix: the web app marks the row, ingest's release task runs the stored
reading through the same store path, once, with its batch's zone, and records the outcome."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import psycopg
import pytest

from ingest.release import release_requested
from ingest.service import IngestConfig
from ingest.store import Message, store_messages
from lab.homes import Device, HomeSpec, Site, provision_home
from tests.support.homes import register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually
from tests.support.web import PROGRAM, SITE_A, Client, Server, user

pytestmark = [pytest.mark.db]

ZONE = "Europe/Berlin"  # the home's zone: the device clock is read in it


@pytest.fixture
def ingest_config(ingest_config: IngestConfig) -> IngestConfig:
    return dataclasses.replace(ingest_config, release_seconds=0.1)


def _row(database: str, reading_id: uuid.UUID) -> dict[str, Any] | None:
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute(
            "SELECT id, reason, released_at, release_outcome FROM quarantine WHERE reading_id = %s",
            (reading_id,),
        ).fetchall()
    assert len(rows) <= 1, rows  # one row per reading, however often it is released
    return rows[0] if rows else None


def _stored(database: str, reading_id: uuid.UUID) -> tuple[Any, ...] | None:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT patient_id, time FROM reading_receipts WHERE id = %s", (reading_id,)
        ).fetchone()
    return None if row is None else tuple(row)


def _last_seen(database: str, gateway_id: str) -> Any:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT last_seen_at FROM gateways WHERE id = %s", (gateway_id,)
        ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.broker
async def test_a_reading_of_a_device_assigned_late_is_stored_once_released(
    ingest_running: object, publisher: aiomqtt.Client, server: Server
) -> None:
    database = server.conninfo
    tag = uuid.uuid4().hex[:8]
    gateway, late = f"gw-rel-{tag}", f"cuff-late-{tag}"
    enrolled = datetime.now(UTC) - timedelta(days=10)
    with psycopg.connect(database) as conn:
        patient = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_A, "Site A"),
                program=PROGRAM,
                enrolled_at=enrolled,
                display_name=f"Release {tag}",
                gateway_id=gateway,
                devices=(Device(f"cuff-{tag}", "blood_pressure_monitor"),),
            ),
        ).patient_id
        conn.execute(
            "INSERT INTO devices (id, type) VALUES (%s, 'blood_pressure_monitor')", (late,)
        )
    measured = datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0)
    reading = bp_reading(late, measured_at=measured)
    reading_id = uuid.UUID(reading["id"])
    body = json.loads(batch(gateway, [reading]))
    body["timezone"] = ZONE
    await publisher.publish(topic(gateway), json.dumps(body).encode(), qos=1)
    await eventually(lambda: _row(database, reading_id) is not None)
    row = _row(database, reading_id)
    assert row is not None
    assert row["reason"] == "device_not_assigned"
    seen = _last_seen(database, gateway)

    supervisor = Client(server.url, user("supervisor", SITE_A))
    try:
        # released before the fix: refused again, no second row, nothing stored
        assert supervisor.post(f"/api/quarantine/{row['id']}/release").status_code == 200
        await eventually(lambda: (_row(database, reading_id) or {}).get("released_at"))
        assert (_row(database, reading_id) or {})["release_outcome"] == (
            "refused: device_not_assigned"
        )
        assert _stored(database, reading_id) is None

        # the fix: the device is assigned to the patient from before the reading
        with psycopg.connect(database) as conn:
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, valid_from)"
                " VALUES (%s, %s, %s)",
                (late, patient, enrolled),
            )
        assert supervisor.post(f"/api/quarantine/{row['id']}/release").status_code == 200
        await eventually(
            lambda: (_row(database, reading_id) or {}).get("release_outcome") == "stored"
        )
        # stored for the patient, its device time read in the batch's zone
        assert _stored(database, reading_id) == (
            patient,
            measured.replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC),
        )
        # a release is not traffic from the gateway
        assert _last_seen(database, gateway) == seen
        # stored once: a further release is refused
        assert supervisor.post(f"/api/quarantine/{row['id']}/release").status_code == 409
    finally:
        supervisor.close()


async def test_outcomes_of_rows_that_cannot_or_need_not_be_stored(database: str) -> None:
    home = register_home(database)
    stranger = f"cuff-unknown-{uuid.uuid4().hex[:8]}"
    readings = [bp_reading(stranger) for _ in range(3)]
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.transaction():
            result = await store_messages(
                conn, [Message(topic(home.gateway_id), batch(home.gateway_id, readings))]
            )
        assert result.quarantined == {"unknown_device": 3}
        ids = [uuid.UUID(r["id"]) for r in readings]
        async with conn.transaction():
            # the device is registered and assigned now
            await conn.execute(
                "INSERT INTO devices (id, type) VALUES (%s, 'blood_pressure_monitor')", (stranger,)
            )
            await conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, valid_from)"
                " VALUES (%s, %s, now() - interval '30 days')",
                (stranger, home.patient_id),
            )
            # the first was sent again and stored meanwhile; the second was cut when quarantined
            # (over the payload limit); the third was quarantined before migration 070
            await store_messages(
                conn, [Message(topic(home.gateway_id), batch(home.gateway_id, readings[:1]))]
            )
            await conn.execute(
                "UPDATE quarantine SET payload_bytes = payload_bytes + 1 WHERE reading_id = %s",
                (ids[1],),
            )
            await conn.execute(
                "UPDATE quarantine SET timezone = NULL WHERE reading_id = %s", (ids[2],)
            )
            await conn.execute(
                "UPDATE quarantine SET release_requested_at = now() WHERE reading_id = ANY(%s)",
                (ids,),
            )
        outcomes = await release_requested(conn)
        assert outcomes == {"duplicate": 1, "payload_truncated": 1, "no_timezone": 1}
        assert await release_requested(conn) == {}  # each row is taken once
    for rid in ids[1:]:
        assert _stored(database, rid) is None
