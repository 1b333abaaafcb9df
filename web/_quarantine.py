"""The quarantine page (``/quarantine``, supervisors and admins): the JSON list of
:mod:`web._admin.quarantine` as a table, filterable, with a release button on the rows whose
cause was configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from web._admin._common import ADMIN_OR_SUPERVISOR
from web._admin.quarantine import FilterDependency, list_quarantine
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
