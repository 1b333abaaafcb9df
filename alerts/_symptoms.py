"""Patient-reported symptoms (issue 15, item 2): the postpartum warning signs — severe headache,
vision change, right-upper-quadrant pain, shortness of breath, chest pain.

A report is stored in ``symptom_reports`` and evaluated by the same rules as every reading, in
the caller's transaction, as a reading of type ``symptom`` whose values name the symptoms (the
``symptoms`` rule, ``alerts/_rules.py``): with a blood pressure at or above the program's level
in the window around it (maternal_postpartum ≥140/90, ACOG Practice Bulletin 222) it is
critical; chest pain or shortness of breath alone is critical (AWHONN POST-BIRTH: call 911);
any other symptom alone is high. A blood pressure at that level after a report (while its
episode is open) makes it critical too.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerts._live import evaluate_readings
from alerts._model import StoredReading
from alerts._rules import SYMPTOM_TYPE, SYMPTOMS
from alerts.errors import InvalidSymptoms

__all__ = [
    "SYMPTOMS",
    "SymptomReport",
    "patient_symptoms",
    "record_symptoms",
    "symptom_reading",
]


@dataclass(frozen=True, slots=True)
class SymptomReport:
    """One stored report (row of ``symptom_reports``)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    at: datetime
    received_at: datetime
    symptoms: tuple[str, ...]
    reported_by: str
    note: str | None


def _checked(symptoms: Sequence[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(symptoms))
    if not names:
        raise InvalidSymptoms("symptoms", "at least one symptom is required")
    unknown = [s for s in names if s not in SYMPTOMS]
    if unknown:
        raise InvalidSymptoms(
            "symptoms",
            f"unknown symptom(s) {', '.join(map(repr, unknown))}; one of " + ", ".join(SYMPTOMS),
        )
    return names


def symptom_reading(
    patient_id: uuid.UUID,
    at: datetime,
    symptoms: Sequence[str],
    *,
    received_at: datetime | None = None,
    report_id: uuid.UUID | None = None,
) -> StoredReading:
    """The reading the rules see for a report (also what a replay cohort's ``symptoms`` entry
    becomes): type ``symptom``, one value 1.0 per symptom."""
    names = _checked(symptoms)
    if at.tzinfo is None:
        raise InvalidSymptoms("at", "needs a time zone offset")
    return StoredReading(
        reading_id=report_id or uuid.uuid4(),
        patient_id=patient_id,
        type=SYMPTOM_TYPE,
        time=at,
        received_at=received_at or at,
        device_id="symptom_report",
        gateway_id="api",
        flags=(),
        values=dict.fromkeys(names, 1.0),
    )


async def record_symptoms(
    conn: psycopg.AsyncConnection[Any],
    patient_id: uuid.UUID,
    symptoms: Sequence[str],
    *,
    reported_by: str,
    at: datetime | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> uuid.UUID:
    """Store a symptom report and run the rules on it in the caller's transaction (never
    commits); returns the report id. Raises :class:`alerts.InvalidSymptoms` naming the field."""
    now = now or datetime.now(UTC)
    at = at or now
    if not reported_by:
        raise InvalidSymptoms("reported_by", "is required")
    if at > now:
        raise InvalidSymptoms("at", "is in the future")
    reading = symptom_reading(patient_id, at, symptoms, received_at=now)
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO symptom_reports (id, patient_id, at, received_at, symptoms,"
            " reported_by, note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                reading.reading_id,
                patient_id,
                at,
                now,
                list(reading.values),
                reported_by,
                note,
            ),
        )
    await evaluate_readings(conn, [reading], now=now)
    return reading.reading_id


async def patient_symptoms(
    conn: psycopg.AsyncConnection[Any], patient_id: uuid.UUID, *, limit: int = 50
) -> list[SymptomReport]:
    """A patient's symptom reports, newest first."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id, patient_id, at, received_at, symptoms, reported_by, note"
            " FROM symptom_reports WHERE patient_id = %s ORDER BY at DESC, id LIMIT %s",
            (patient_id, limit),
        )
        rows = await cur.fetchall()
    return [SymptomReport(r[0], r[1], r[2], r[3], tuple(r[4]), r[5], r[6]) for r in rows]
