"""Device assignments: which patient a device measures, from when until when (overlaps answer
409): a patient's list, assign (admin), end (admin). A device belongs to the site of care of
its latest assignment: another site's device, like an unknown one, answers 404."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from web._access import PatientRef, check_patient_access, patient_access
from web._admin._common import ADMIN, ANY, aware, one_row, update_record
from web._audit import audit_denied
from web._db import Row
from web._principal import Principal
from web._schemas import AssignmentOut, PageOf
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


#: a device and the site of care of its latest assignment (none if never assigned)
_DEVICE_SITE_SQL = (
    "SELECT d.id, (SELECT p.site_id FROM device_assignments a JOIN patients p"
    " ON p.id = a.patient_id WHERE a.device_id = d.id ORDER BY a.valid_from DESC, a.id DESC"
    " LIMIT 1) AS site_id FROM devices d WHERE d.id = %s"
)


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
    """The device must be unassigned so far or last assigned at one of my sites; another
    site's device answers 404 as an unknown one does (device ids are serial numbers)."""
    action = "api assign device"
    await check_patient_access(request, principal, body.patient_id, action)
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(_DEVICE_SITE_SQL, (body.device_id,))
        device = await cur.fetchone()
        resource = f"device/{body.device_id}"
        if device is None or not (
            device["site_id"] is None or principal.may_see_site(device["site_id"])
        ):
            await audit_denied(
                request,
                principal,
                action,
                reason="not_found" if device is None else "site",
                site_id=device["site_id"] if device else None,
                resource=resource,
            )
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such device")
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
