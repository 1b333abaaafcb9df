"""Symptom reports on the live path (issue 15, item 2): stored, evaluated in the caller's
transaction, against the blood pressures stored before them (real TimescaleDB).

ACOG Practice Bulletin 222: severe headache, visual disturbances or right-upper-quadrant pain
with a blood pressure ≥140/90 postpartum is preeclampsia with severe features; AWHONN
POST-BIRTH: chest pain or shortness of breath, call 911.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alerts._symptoms import patient_symptoms, record_symptoms
from alerts.errors import InvalidSymptoms
from tests.alerts.helpers import T0, bp, make_patient, store

pytestmark = pytest.mark.db

Conn = psycopg.AsyncConnection[Any]
HOUR = timedelta(hours=1)


async def _symptom_episode(conn: Conn, patient: uuid.UUID) -> tuple[Any, ...] | None:
    cur = await conn.execute(
        "SELECT state, severity, priority, explanation FROM alert_episodes"
        " WHERE patient_id = %s AND family = 'symptom'",
        (patient,),
    )
    return await cur.fetchone()


@pytest.mark.parametrize(("pressure", "severity"), [((142, 88), "critical"), ((138, 88), "high")])
async def test_postpartum_headache_with_bp_140_90_is_critical(
    conn: Conn, pressure: tuple[float, float], severity: str
) -> None:
    pid = await make_patient(conn, "maternal_postpartum")
    await store(conn, [bp(pid, T0, *pressure)], now=T0 + HOUR)
    rid = await record_symptoms(
        conn, pid, ["severe_headache"], reported_by="cm.test", at=T0 + HOUR, now=T0 + HOUR
    )
    row = await _symptom_episode(conn, pid)
    assert row is not None
    assert (row[0], row[1]) == ("open", severity)
    assert "severe headache" in row[3]
    (report,) = await patient_symptoms(conn, pid)
    assert (report.id, report.symptoms, report.reported_by) == (
        rid,
        ("severe_headache",),
        "cm.test",
    )


async def test_chest_pain_alone_is_critical_priority_one(conn: Conn) -> None:
    pid = await make_patient(conn, "maternal_postpartum")
    await record_symptoms(conn, pid, ["chest_pain"], reported_by="cm.test", now=T0)
    row = await _symptom_episode(conn, pid)
    assert row is not None
    assert (row[1], row[2]) == ("critical", 1)


@pytest.mark.parametrize(("symptoms", "field"), [([], "symptoms"), (["headache"], "symptoms")])
async def test_a_bad_report_names_its_field(conn: Conn, symptoms: list[str], field: str) -> None:
    pid = await make_patient(conn, "maternal_postpartum")
    with pytest.raises(InvalidSymptoms) as err:
        await record_symptoms(conn, pid, symptoms, reported_by="cm.test", now=T0)
    assert err.value.field == field
