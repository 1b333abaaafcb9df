"""Patient-reported symptoms (issue 15): a care team member on the phone, or a patient app acting
through one, reports the postpartum warning signs — severe headache, vision change,
right-upper-quadrant pain, shortness of breath, chest pain. alerts/ stores the report and runs
its rules on it in the same transaction: with a blood pressure at or above the program's level
(maternal_postpartum ≥140/90) the episode is critical, and so is chest pain or shortness of
breath alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

import alerts
from web._access import PatientRef, patient_access
from web._auth import require
from web._db import alerts_conn
from web._field_errors import field_error
from web._principal import Principal, Role
from web._state import app_state

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["symptoms"])
CARE = require(Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR)
ANY = require()

Symptom = Literal[
    "severe_headache", "vision_change", "ruq_pain", "shortness_of_breath", "chest_pain"
]


class SymptomsIn(BaseModel):
    symptoms: Annotated[list[Symptom], Field(min_length=1, max_length=5)]
    at: datetime | None = Field(
        default=None, description="when the patient had them (default: now); with an offset"
    )
    note: Annotated[str | None, Field(max_length=2000)] = None


async def _report_detail(body: SymptomsIn) -> dict[str, object]:
    """The report is checked before the patient is loaded; the audit row counts its symptoms."""
    if body.at is not None and body.at.tzinfo is None:
        raise field_error("at", "timestamps need an offset")
    return {"count": len(body.symptoms)}


@router.post(
    "/patients/{patient_id}/symptoms",
    status_code=201,
    summary="Report a patient's symptoms (evaluated by the alert rules at once)",
)
async def report_symptoms(
    request: Request,
    body: SymptomsIn,
    principal: Annotated[Principal, Depends(CARE)],
    patient: Annotated[
        PatientRef, Depends(patient_access("report symptoms", CARE, detail=_report_detail))
    ],
) -> dict[str, Any]:
    patient_id = patient.id
    async with app_state(request).pool.connection() as conn, alerts_conn(conn) as aconn:
        try:
            report_id = await alerts.record_symptoms(
                aconn,
                patient_id,
                body.symptoms,
                reported_by=principal.username,
                at=body.at,
                note=body.note,
            )
        except alerts.InvalidSymptoms as exc:
            raise field_error(exc.field, exc.detail) from None
        cur = await aconn.execute(
            "SELECT id, family, state, severity, priority FROM alert_episodes"
            " WHERE patient_id = %s AND family = 'symptom' AND state <> 'resolved'",
            (patient_id,),
        )
        row = await cur.fetchone()
    episode = (
        None
        if row is None
        else {
            "id": str(row[0]),
            "family": row[1],
            "state": row[2],
            "severity": row[3],
            "priority": row[4],
        }
    )
    return {
        "id": str(report_id),
        "symptoms": list(dict.fromkeys(body.symptoms)),
        "episode": episode,
    }


@router.get("/patients/{patient_id}/symptoms", summary="A patient's symptom reports, newest first")
async def list_symptoms(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("api read symptoms", ANY))],
) -> list[dict[str, Any]]:
    patient_id = patient.id
    async with app_state(request).pool.connection() as conn, alerts_conn(conn) as aconn:
        reports = await alerts.patient_symptoms(aconn, patient_id)
    return [
        {
            "id": str(r.id),
            "at": r.at.isoformat(),
            "received_at": r.received_at.isoformat(),
            "symptoms": list(r.symptoms),
            "reported_by": r.reported_by,
            "note": r.note,
        }
        for r in reports
    ]
