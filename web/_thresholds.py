"""Per-patient threshold overrides (clinicians and admins) through alerts/'s versioned,
append-only ``set_threshold``; and the effective values with their sources."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

import alerts
from web._access import check_patient_access
from web._alerts_bridge import threshold_history
from web._auth import require
from web._db import alerts_conn
from web._principal import Principal, Role
from web._state import app_state

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["thresholds"])
CLINICAL = require(Role.CLINICIAN, Role.ADMIN)
ANY = require()


class OverrideIn(BaseModel):
    parameter: Annotated[str, Field(examples=["bp_high.level1_systolic"], max_length=100)]
    value: float | None = Field(description="null: back to the inherited value")
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@router.get("/patients/{patient_id}/thresholds", summary="Effective thresholds and history")
async def get_thresholds(
    request: Request, patient_id: uuid.UUID, principal: Annotated[Principal, Depends(ANY)]
) -> dict[str, Any]:
    await check_patient_access(request, principal, patient_id, "api read thresholds")
    async with app_state(request).pool.connection() as conn:
        async with alerts_conn(conn) as aconn:
            ts = await alerts.effective_thresholds(aconn, patient_id)
        history = await threshold_history(conn, patient_id)
    return {
        "program": ts.program,
        "template": ts.template,
        "enabled": sorted(ts.enabled),
        "effective": {
            rule: {name: {"value": v.value, "source": v.source} for name, v in params.items()}
            for rule, params in ts.values.items()
        },
        "history": history,
    }


@router.post(
    "/patients/{patient_id}/thresholds",
    status_code=201,
    summary="Order a per-patient threshold override (clinician, admin)",
)
async def set_override(
    request: Request,
    patient_id: uuid.UUID,
    body: OverrideIn,
    principal: Annotated[Principal, Depends(CLINICAL)],
) -> dict[str, Any]:
    for t in (body.valid_from, body.valid_until):
        if t is not None and t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "timestamps need an offset")
    await check_patient_access(
        request, principal, patient_id, "set threshold", detail={"parameter": body.parameter}
    )
    async with app_state(request).pool.connection() as conn, alerts_conn(conn) as aconn:
        try:
            version_id = await alerts.set_threshold(
                aconn,
                scope="patient",
                parameter=body.parameter,
                value=body.value,
                ordered_by=principal.username,
                reason=body.reason,
                valid_from=body.valid_from or datetime.now(UTC),
                valid_until=body.valid_until,
                patient_id=patient_id,
            )
        except alerts.InvalidThreshold as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail) from None
    return {"id": version_id, "parameter": body.parameter, "value": body.value}
