"""The audit log of my sites (supervisor, admin); reading it is audited in turn."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from web._admin._common import ADMIN_OR_SUPERVISOR, fetch_page
from web._audit import audit
from web._paging import Page, page_params, paged
from web._principal import Principal
from web._schemas import AuditOut, PageOf
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/audit",
    response_model=PageOf[AuditOut],
    summary="The audit log of my sites (supervisor, admin)",
)
async def list_audit(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
    page: Annotated[Page, Depends(page_params)],
    patient_id: uuid.UUID | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        rows, total = await fetch_page(
            conn,
            "SELECT id, at, user_id, username, action, outcome, patient_id, site_id, resource"
            " FROM audit_events WHERE (site_id = ANY(%s) OR user_id = %s)"
            " AND (%s::uuid IS NULL OR patient_id = %s) AND (%s::text IS NULL OR outcome = %s)"
            " ORDER BY at DESC, id DESC",
            [sorted(principal.sites), principal.user_id, patient_id, patient_id, outcome, outcome],
            page,
        )
        # the log names patients too: reading it is an access like any other
        shown = sorted({str(r["patient_id"]) for r in rows if r["patient_id"] is not None})
        await audit(
            conn, principal, "view audit log", patient_id=patient_id, detail={"patients": shown}
        )
    return paged(request, rows, total, page)
