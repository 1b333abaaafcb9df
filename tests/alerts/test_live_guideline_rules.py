"""Issue 15, item 2 on the live path (real TimescaleDB): symptom reports stored and evaluated in
the caller's transaction against the blood pressures stored before them; several enrollments
where the most protective program wins per rule.

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
from tests.support.alerts import T0, bp, make_patient, store

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


async def test_live_postpartum_patient_later_enrolled_in_hypertension_keeps_160_110(
    conn: Conn,
) -> None:
    # ACOG CO 767: severe range ≥160/110 (confirmed within 15 min); the later hypertension
    # enrollment (>180/120) must not replace it
    pid = await make_patient(conn, "maternal_postpartum")
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO programs (id, name, template) VALUES ('hypertension-prog',"
            " 'hypertension', 'hypertension') ON CONFLICT DO NOTHING"
        )
        await cur.execute(
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
            " consent_given_at) VALUES (%s, 'hypertension-prog', 'site-a', %s, %s)",
            (pid, T0 - timedelta(days=2), T0 - timedelta(days=2)),
        )
    await store(conn, [bp(pid, T0, 166, 102)], now=T0 + timedelta(seconds=30))
    await store(conn, [bp(pid, T0 + timedelta(minutes=5), 164, 104)], now=T0 + timedelta(minutes=6))
    cur = await conn.execute(
        "SELECT state, severity, threshold_version, explanation FROM alert_episodes"
        " WHERE patient_id = %s AND family = 'bp_crisis'",
        (pid,),
    )
    row = await cur.fetchone()
    assert row is not None
    assert (row[0], row[1]) == ("open", "critical")
    assert row[2].startswith("maternal_postpartum@")
    assert "program maternal_postpartum threshold" in row[3]
