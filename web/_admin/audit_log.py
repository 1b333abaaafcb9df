"""The audit log of my sites and of my sites' users (supervisor, admin); reading it is audited
in turn."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from web._admin._common import ADMIN_OR_SUPERVISOR, fetch_page
from web._audit import audit
from web._db import Row
from web._paging import Page, page_params, paged
from web._principal import Principal, Role
from web._schemas import AuditOut, PageOf
from web._state import app_state

__all__ = ["router"]

router = APIRouter()
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@router.get(
    "/audit",
    response_model=PageOf[AuditOut],
    summary="The audit log of my sites and my users (supervisor, admin)",
)
async def list_audit(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
    page: Annotated[Page, Depends(page_params)],
    patient_id: uuid.UUID | None = None,
    outcome: str | None = None,
    username: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The rows of my sites; mine; the denials of my sites' users anywhere (a row of another
    site shows no patient id and no ids in its action); for an admin, the rows without a
    site too (failed logins of unknown names)."""
    sites = sorted(principal.sites)
    admin = principal.role == Role.ADMIN
    async with app_state(request).pool.connection() as conn:
        mine = "(a.site_id = ANY(%s) OR a.user_id = %s)"
        rows, total = await fetch_page(
            conn,
            "SELECT a.id, a.at, a.user_id, a.username, a.action, a.outcome, a.patient_id,"
            f" a.site_id, a.resource, a.detail ->> 'reason' AS reason, {mine} AS mine"
            f" FROM audit_events a WHERE ({mine}"
            "  OR (a.outcome = 'denied' AND a.user_id IN (SELECT us.user_id FROM web_user_sites us"
            "   WHERE us.site_id = ANY(%s)))"
            "  OR (%s AND a.site_id IS NULL))"
            f" AND (%s::uuid IS NULL OR (a.patient_id = %s AND {mine}))"
            " AND (%s::text IS NULL OR a.outcome = %s)"
            " AND (%s::text IS NULL OR a.username = %s)"
            " ORDER BY a.at DESC, a.id DESC",
            [
                *(sites, principal.user_id) * 2,
                sites,
                admin,
                patient_id,
                patient_id,
                sites,
                principal.user_id,
                outcome,
                outcome,
                username,
                username,
            ],
            page,
        )
        items = [_shown(r) for r in rows]
        # the log names patients too: reading it is an access like any other
        shown = sorted({str(r["patient_id"]) for r in items if r["patient_id"] is not None})
        await audit(
            conn, principal, "view audit log", patient_id=patient_id, detail={"patients": shown}
        )
    return paged(request, items, total, page)


def _shown(row: Row) -> Row:
    """A row as I may see it: one of another site's (or of no site) that is not mine names no
    patient, and its action and resource show no ids (paths hold patients' ids)."""
    full = row.pop("mine")
    if full:
        return row
    return {
        **row,
        "patient_id": None,
        "action": _UUID.sub("<id>", row["action"]),
        "resource": _UUID.sub("<id>", row["resource"]) if row["resource"] else None,
    }
