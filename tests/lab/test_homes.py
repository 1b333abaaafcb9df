"""Provisioned homes: one home, row by row or by COPY, is the same rows; its consent and its
devices' assignments follow the enrollment."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from lab.homes import (
    Device,
    HomeSpec,
    Program,
    Site,
    provision_home,
    provision_home_async,
    provision_homes_bulk,
)

pytestmark = pytest.mark.db

ENROLLED = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
ENDED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def _spec(tag: str, **overrides: Any) -> HomeSpec:
    values: dict[str, Any] = {
        "site": Site(f"homes-{tag}", "Homes test site", "Europe/Berlin"),
        "program": Program(f"homes-hf-{tag}", "Heart failure", "heart_failure"),
        "enrolled_at": ENROLLED,
        "ended_at": ENDED,
        "display_name": "Homes Patient",
        "mrn": f"HOMES-{tag}",
        "birth_date": date(1948, 7, 1),
        "risk_tier": 1,
        "billing_practitioner": "dr-h",
        "gateway_id": f"homes-gw-{tag}",
        "gateway_label": "kitchen",
        "gateway_online": True,
        "gateway_status": {"state": "online"},
        "status_at": ENDED,
        "devices": (
            Device(f"homes-cuff-{tag}", "blood_pressure_monitor", "A&D", "UA-651BLE"),
            Device(f"homes-scale-{tag}", "weight_scale"),
        ),
    }
    values.update(overrides)
    return HomeSpec(**values)


def _rows(conn: psycopg.Connection[Any], patient: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    """Everything provisioned for ``patient``, without the ids the tag makes unique."""
    return {
        "patient": conn.execute(
            "SELECT p.display_name, p.birth_date, p.risk_tier, s.name, s.timezone"
            " FROM patients p JOIN sites s ON s.id = p.site_id WHERE p.id = %s",
            (patient,),
        ).fetchall(),
        "enrollment": conn.execute(
            "SELECT pr.name, pr.template, e.enrolled_at, e.ended_at, e.consent_given_at,"
            " e.billing_practitioner FROM enrollments e JOIN programs pr ON pr.id = e.program_id"
            " WHERE e.patient_id = %s",
            (patient,),
        ).fetchall(),
        "gateway": conn.execute(
            "SELECT g.label, g.status, g.online, g.status_at FROM gateways g"
            " JOIN gateway_patients gp ON gp.gateway_id = g.id WHERE gp.patient_id = %s",
            (patient,),
        ).fetchall(),
        "devices": conn.execute(
            "SELECT d.type, d.manufacturer, d.model, a.valid_from, a.valid_to"
            " FROM device_assignments a JOIN devices d ON d.id = a.device_id"
            " WHERE a.patient_id = %s ORDER BY d.type",
            (patient,),
        ).fetchall(),
    }


def test_row_by_row_and_by_copy_write_the_same_home(database: str) -> None:
    one, bulk = _spec(uuid.uuid4().hex[:8]), _spec(uuid.uuid4().hex[:8])
    with psycopg.connect(database) as conn:
        home = provision_home(conn, one)
        written = provision_homes_bulk(conn, [bulk])
        assert home.patient_id == one.patient_id
        assert home.gateway_id == one.gateway_id
        assert home.device_ids == (one.devices[0].id, one.devices[1].id)
        assert home.gateway_password is None
        assert written == {
            "patients": 1,
            "enrollments": 1,
            "gateways": 1,
            "gateway_patients": 1,
            "devices": 2,
            "device_assignments": 2,
        }
        expected = {
            "patient": [("Homes Patient", date(1948, 7, 1), 1, "Homes test site", "Europe/Berlin")],
            "enrollment": [("Heart failure", "heart_failure", ENROLLED, ENDED, ENROLLED, "dr-h")],
            "gateway": [("kitchen", {"state": "online"}, True, ENDED)],
            "devices": [
                ("blood_pressure_monitor", "A&D", "UA-651BLE", ENROLLED, ENDED),
                ("weight_scale", None, None, ENROLLED, ENDED),
            ],
        }
        assert _rows(conn, one.patient_id) == expected
        assert _rows(conn, bulk.patient_id) == expected
        conn.rollback()


async def test_async_variant_and_a_home_without_consent(database: str) -> None:
    spec = _spec(uuid.uuid4().hex[:8], consent=False, gateway_id=None, devices=())
    async with await psycopg.AsyncConnection.connect(database) as conn:
        home = await provision_home_async(conn, spec)
        assert home.gateway_id is None
        assert home.device_ids == ()
        cur = await conn.execute(
            "SELECT consent_given_at FROM enrollments WHERE patient_id = %s", (spec.patient_id,)
        )
        assert await cur.fetchall() == [(None,)]
        cur = await conn.execute(
            "SELECT count(*) FROM gateway_patients WHERE patient_id = %s", (spec.patient_id,)
        )
        assert await cur.fetchone() == (0,)
        await conn.rollback()


def test_a_broker_login_needs_a_gateway(database: str) -> None:
    with psycopg.connect(database) as conn, pytest.raises(ValueError, match="gateway"):
        provision_home(conn, _spec(uuid.uuid4().hex[:8], gateway_id=None), broker_login=True)
