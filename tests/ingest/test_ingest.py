"""Ingest over the real broker into the real TimescaleDB: exactly once, and nothing dropped."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import aiomqtt
import psycopg
import pytest

from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]

RESET_CLOCK = datetime(2000, 1, 1, 0, 5, tzinfo=UTC).replace(tzinfo=None)  # device clocks are naive


async def test_batch_is_stored_with_both_clocks(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    readings = [bp_reading(home.cuff_id) for _ in range(3)]
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, readings), qos=1)
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE patient_id = %s",
                home.patient_id,
            )
            == 3
        )
    )
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT code, value, unit, gateway_id, device_id FROM readings WHERE reading_id = %s ORDER BY code",
            (uuid.UUID(readings[0]["id"]),),
        ).fetchall()
    assert rows == [
        ("diastolic", 88.0, "mm[Hg]", home.gateway_id, home.cuff_id),
        ("pulse", 61.0, "/min", home.gateway_id, home.cuff_id),
        ("systolic", 138.0, "mm[Hg]", home.gateway_id, home.cuff_id),
    ]


async def test_same_batch_three_times_is_stored_once(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    readings = [bp_reading(home.cuff_id, systolic=120 + i) for i in range(5)]
    payload = batch(home.gateway_id, readings)
    for _ in range(3):
        await publisher.publish(topic(home.gateway_id), payload, qos=1)
    # a resend by the gateway is a new message (new sent_at) with the same reading ids
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, readings), qos=1)
    marker = bp_reading(home.cuff_id)
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [marker]), qos=1)
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE id = %s",
                uuid.UUID(marker["id"]),
            )
            == 1
        )
    )
    assert (
        count(
            database, "SELECT count(*) FROM reading_receipts WHERE patient_id = %s", home.patient_id
        )
        == 6
    )
    assert (
        count(database, "SELECT count(*) FROM readings WHERE patient_id = %s", home.patient_id)
        == 18
    )


async def test_every_quarantine_reason_beside_good_readings(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    gw = home.gateway_id
    other = register_home(database)  # a device of another home, sent through this gateway
    no_consent = register_home(database, consent=False)
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO devices (id, type) VALUES (%s, 'blood_pressure_monitor')", (f"loose-{gw}",)
        )
        conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (gw, no_consent.patient_id),
        )
    good = [bp_reading(home.cuff_id) for _ in range(3)]
    unknown_device = bp_reading("never-registered")
    not_assigned = bp_reading(f"loose-{gw}")
    impossible = bp_reading(home.cuff_id, systolic=900)
    future = bp_reading(
        home.cuff_id, measured_at=datetime.now(UTC).replace(tzinfo=None) + timedelta(days=3)
    )
    foreign = bp_reading(other.cuff_id)
    without_consent = bp_reading(no_consent.cuff_id)
    malformed = {"id": "not-a-uuid"}
    mixed = [
        good[0],
        unknown_device,
        not_assigned,
        good[1],
        impossible,
        future,
        foreign,
        without_consent,
        malformed,
        good[2],
    ]
    await publisher.publish(topic(gw), batch(gw, mixed), qos=1)
    await publisher.publish(topic(gw), b"{not json", qos=1)
    wrong_schema = json.dumps(
        {"schema": "carebeacon.readings/99", "gateway_id": gw, "readings": []}
    )
    await publisher.publish(topic(gw), wrong_schema.encode(), qos=1)
    await publisher.publish(topic(gw), batch("someone-else", [bp_reading(home.cuff_id)]), qos=1)
    await publisher.publish(
        topic("gw-unknown"), batch("gw-unknown", [bp_reading(home.cuff_id)]), qos=1
    )
    expected = {
        "unknown_device",
        "device_not_assigned",
        "impossible_value",
        "device_time_implausible",
        "device_not_on_gateway",
        "no_consent",
        "invalid_payload",
        "bad_json",
        "unknown_schema",
        "gateway_mismatch",
        "unknown_gateway",
    }

    def reasons() -> set[str]:
        with psycopg.connect(database) as conn:
            return {
                r[0]
                for r in conn.execute(
                    "SELECT reason FROM quarantine WHERE gateway_id IN (%s, 'gw-unknown')", (gw,)
                )
            }

    await eventually(lambda: reasons() >= expected)
    assert reasons() == expected
    stored = count(database, "SELECT count(*) FROM reading_receipts WHERE gateway_id = %s", gw)
    assert stored == 3
    with psycopg.connect(database) as conn:
        ids = {
            r[0]
            for r in conn.execute("SELECT id FROM reading_receipts WHERE gateway_id = %s", (gw,))
        }
        payload = conn.execute(
            "SELECT payload FROM quarantine WHERE reason = 'impossible_value' AND gateway_id = %s",
            (gw,),
        ).fetchone()
    assert ids == {uuid.UUID(r["id"]) for r in good}
    assert payload is not None
    assert json.loads(bytes(payload[0]))["id"] == impossible["id"]


async def test_clock_reset_reading_is_stored_at_receive_time(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    reading = bp_reading(
        home.cuff_id,
        measured_at=RESET_CLOCK,
        flags=["device_clock_reset"],
    )
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1)
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE id = %s",
                uuid.UUID(reading["id"]),
            )
            == 1
        )
    )
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT time, measured_at, received_at, flags FROM reading_receipts WHERE id = %s",
            (uuid.UUID(reading["id"]),),
        ).fetchone()
    assert row is not None
    assert row[0] == row[2] == datetime.fromisoformat(reading["received_at"])
    assert row[1] == RESET_CLOCK
    assert row[3] == ["device_clock_reset"]


async def test_gateway_status_and_last_will(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    status = {
        "schema": "carebeacon.status/1",
        "gateway_id": home.gateway_id,
        "state": "online",
        "sent_at": datetime.now(UTC).isoformat(),
        "software_version": "0.1.0",
        "devices": [],
        "unknown_devices": 0,
        "outbox": {"depth": 0, "oldest_at": None, "full": False},
    }
    await publisher.publish(
        topic(home.gateway_id, "status"), json.dumps(status).encode(), qos=1, retain=True
    )
    await eventually(
        lambda: (
            count(
                database, "SELECT count(*) FROM gateways WHERE id = %s AND online", home.gateway_id
            )
            == 1
        )
    )
    will = {"schema": "carebeacon.status/1", "gateway_id": home.gateway_id, "state": "offline"}
    await publisher.publish(
        topic(home.gateway_id, "status"), json.dumps(will).encode(), qos=1, retain=True
    )
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM gateways WHERE id = %s AND NOT online",
                home.gateway_id,
            )
            == 1
        )
    )
    await publisher.publish(
        topic(home.gateway_id, "status"), b"", qos=1, retain=True
    )  # clear retained


async def test_metrics_and_logs_carry_no_patient_data(
    ingest_running: object,
    publisher: aiomqtt.Client,
    database: str,
    home: Home,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prometheus_client import REGISTRY, generate_latest

    caplog.set_level(logging.DEBUG)
    planted = "Zebediah Quillfeather-Planted"
    with psycopg.connect(database) as conn:
        conn.execute(
            "UPDATE patients SET display_name = %s WHERE id = %s", (planted, home.patient_id)
        )
    good = bp_reading(home.cuff_id)
    await publisher.publish(
        topic(home.gateway_id),
        batch(home.gateway_id, [good, bp_reading(home.cuff_id, systolic=999)]),
        qos=1,
    )
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE id = %s",
                uuid.UUID(good["id"]),
            )
            == 1
        )
    )
    metrics = generate_latest(REGISTRY).decode()
    assert "carebeacon_ingest_readings_stored_total" in metrics
    assert 'carebeacon_ingest_quarantined_total{reason="impossible_value"}' in metrics
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (planted, str(home.patient_id), home.cuff_id, home.gateway_id):
        assert secret not in metrics
        assert secret not in logs
