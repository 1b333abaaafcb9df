"""Care-management time of a patient (the minutes billing counts): log (care team), list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from web._access import Detail, PatientRef, patient_access
from web._admin._common import ANY, CARE, aware, page_of
from web._care_time import insert_time_entry
from web._db import Row
from web._paging import Page, page_params
from web._principal import Principal
from web._schemas import PageOf, TimeEntryOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class TimeEntryIn(BaseModel):
    started_at: datetime
    minutes: Annotated[float, Field(gt=0, le=240)]
    interactive: bool = Field(description="included a live, real-time interactive communication")
    episode_id: uuid.UUID | None = None
    note: Annotated[str | None, Field(max_length=2000)] = None


async def _entry_first(body: TimeEntryIn) -> Detail:
    """The entry is validated before the patient is loaded (and audited)."""
    return None


async def _page_first(page: Annotated[Page, Depends(page_params)]) -> Detail:
    """The page is validated before the patient is loaded (and audited)."""
    return None


@router.post(
    "/patients/{patient_id}/time-entries",
    response_model=TimeEntryOut,
    status_code=201,
    summary="Log care-management time",
)
async def log_time(
    request: Request,
    body: TimeEntryIn,
    principal: Annotated[Principal, Depends(CARE)],
    patient: Annotated[
        PatientRef, Depends(patient_access("log care time", CARE, detail=_entry_first))
    ],
) -> Row:
    started = aware(body.started_at)
    if started is not None and started > datetime.now(UTC):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "time cannot be logged ahead")
    async with app_state(request).pool.connection() as conn:
        row = await insert_time_entry(
            conn,
            patient_id=patient.id,
            user_id=principal.user_id,
            started_at=started or datetime.now(UTC),
            minutes=body.minutes,
            interactive=body.interactive,
            episode_id=body.episode_id,
            note=body.note,
        )
    return row


@router.get(
    "/patients/{patient_id}/time-entries",
    response_model=PageOf[TimeEntryOut],
    summary="A patient's care-management time",
)
async def list_time(
    request: Request,
    page: Annotated[Page, Depends(page_params)],
    patient: Annotated[
        PatientRef, Depends(patient_access("api list care time", ANY, detail=_page_first))
    ],
) -> dict[str, Any]:
    return await page_of(
        request,
        "SELECT t.id, t.started_at, t.seconds, t.interactive, t.episode_id, t.note,"
        " u.username FROM care_time_entries t JOIN web_users u ON u.id = t.user_id"
        " WHERE t.patient_id = %s ORDER BY t.started_at DESC, t.id DESC",
        [patient.id],
        page,
    )
