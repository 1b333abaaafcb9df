"""Device assignments: which patient a device measures, from when until when (overlaps answer
409): a patient's list, assign (admin), end (admin)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from web._access import PatientRef, check_patient_access, patient_access
from web._admin._common import ADMIN, ANY, aware, one_row, update_record
from web._db import Row
from web._principal import Principal
from web._schemas import AssignmentOut, PageOf
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class AssignmentIn(BaseModel):
    device_id: str
    patient_id: uuid.UUID
    user_index: Annotated[int | None, Field(ge=0, le=255)] = None
    valid_from: datetime
    valid_to: datetime | None = None


class AssignmentEnd(BaseModel):
    valid_to: datetime


@router.get(
    "/patients/{patient_id}/assignments",
    response_model=PageOf[AssignmentOut],
    summary="A patient's device assignments",
)
async def list_assignments(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("api list assignments", ANY))],
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM device_assignments WHERE patient_id = %s ORDER BY valid_from",
            (patient.id,),
        )
        rows = await cur.fetchall()
    return {"items": rows, "total": len(rows), "limit": len(rows), "offset": 0, "next": None}


@router.post(
    "/assignments",
    response_model=AssignmentOut,
    status_code=201,
    summary="Assign a device to a patient for a time",
)
async def create_assignment(
    request: Request, body: AssignmentIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    await check_patient_access(request, principal, body.patient_id, "api assign device")
    async with app_state(request).pool.connection() as conn:
        return await one_row(
            conn,
            "INSERT INTO device_assignments (device_id, patient_id, user_index, valid_from,"
            " valid_to) VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (
                body.device_id,
                body.patient_id,
                body.user_index,
                aware(body.valid_from),
                aware(body.valid_to),
            ),
        )


@router.post(
    "/assignments/{assignment_id}/end",
    response_model=AssignmentOut,
    summary="End a device assignment",
)
async def end_assignment(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    assignment_id: int,
    body: AssignmentEnd,
) -> Row:
    return await update_record(
        request,
        principal,
        "device_assignments",
        assignment_id,
        "api end assignment",
        "valid_to = %s",
        (aware(body.valid_to),),
    )
