"""Per-patient threshold overrides (clinicians and admins) through alerts/'s versioned,
append-only ``set_threshold``; and the effective values with their sources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

import alerts
from web._access import Detail, PatientRef, patient_access
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


async def _override_detail(body: OverrideIn) -> Detail:
    """The order is checked before the patient is loaded; the audit row names its parameter."""
    for t in (body.valid_from, body.valid_until):
        if t is not None and t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "timestamps need an offset")
    return {"parameter": body.parameter}


@router.get("/patients/{patient_id}/thresholds", summary="Effective thresholds and history")
async def get_thresholds(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("api read thresholds", ANY))],
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        async with alerts_conn(conn) as aconn:
            ts = await alerts.effective_thresholds(aconn, patient.id)
        history = await threshold_history(conn, patient.id)
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
    body: OverrideIn,
    principal: Annotated[Principal, Depends(CLINICAL)],
    patient: Annotated[
        PatientRef, Depends(patient_access("set threshold", CLINICAL, detail=_override_detail))
    ],
) -> dict[str, Any]:
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
                patient_id=patient.id,
            )
        except alerts.InvalidThreshold as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail) from None
    return {"id": version_id, "parameter": body.parameter, "value": body.value}
