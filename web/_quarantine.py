"""The quarantine page (``/quarantine``, supervisors and admins): the JSON list of
:mod:`web._admin.quarantine` as a table, filterable, with a release button on the rows whose
cause was configuration."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse

from web._admin._common import ADMIN_OR_SUPERVISOR
from web._admin.quarantine import FilterDependency, list_quarantine, release
from web._paging import Page, page_params
from web._principal import Principal
from web._state import app_state

__all__ = ["router"]

router = APIRouter(tags=["quarantine"])


@router.get("/quarantine", response_class=HTMLResponse, include_in_schema=False)
async def quarantine_page(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
    page: Annotated[Page, Depends(page_params)],
    where: FilterDependency,
) -> Response:
    listing = await list_quarantine(request, principal, where, page, "quarantine page")
    return app_state(request).templates.TemplateResponse(
        request,
        "quarantine.html",
        {
            "principal": principal,
            "listing": listing,
            "where": where,
            "sites": sorted(principal.sites),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/quarantine/{quarantine_id}/release", response_class=HTMLResponse, include_in_schema=False
)
async def release_button(
    request: Request,
    quarantine_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> HTMLResponse:
    """The page's Release button: the API's release, answered as the cell's new text."""
    try:
        await release(request, quarantine_id, principal)
    except HTTPException as exc:
        return HTMLResponse(
            f'<span class="error">{html.escape(str(exc.detail))}</span>', status_code=200
        )
    return HTMLResponse("requested")
