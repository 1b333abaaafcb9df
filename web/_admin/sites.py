"""Sites of care: list mine, create one (admin; its creator gets access to it)."""

from __future__ import annotations

import functools
import zoneinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import AfterValidator, BaseModel, Field

from web._admin._common import ADMIN, ANY, ID_PATTERN, one_row, page_of
from web._audit import audit
from web._db import Row
from web._paging import Page, page_params
from web._principal import Principal
from web._schemas import PageOf, SiteOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _iana_timezone(name: str) -> str:
    """A site's zone must load: an unknown one made every billing ledger of the site answer
    500 (found by schemathesis)."""
    if name not in _timezones():
        raise ValueError("not an IANA time zone name")
    return name


class SiteIn(BaseModel):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: Annotated[
        str, AfterValidator(_iana_timezone), Field(description="IANA time zone (Europe/Berlin)")
    ] = "UTC"


@router.get("/sites", response_model=PageOf[SiteOut], summary="List my sites of care")
async def list_sites(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
) -> dict[str, Any]:
    return await page_of(
        request,
        "SELECT id, name, timezone, created_at FROM sites WHERE id = ANY(%s) ORDER BY id",
        [sorted(principal.sites)],
        page,
    )


@router.post(
    "/sites", response_model=SiteOut, status_code=201, summary="Create a site of care (admin)"
)
async def create_site(
    request: Request, body: SiteIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s)"
            " RETURNING id, name, timezone, created_at",
            (body.id, body.name, body.timezone),
        )
        await conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s)",
            (principal.user_id, body.id),
        )
        await audit(conn, principal, "create site", site_id=body.id)
    return row
