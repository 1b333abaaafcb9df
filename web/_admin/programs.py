"""Programs (hypertension, diabetes…, each from an alert template): list, create (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from web._admin._common import ADMIN, ANY, ID_PATTERN, one_row, page_of
from web._audit import audit
from web._db import Row
from web._paging import Page, page_params
from web._principal import Principal
from web._schemas import PageOf, ProgramOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class ProgramIn(BaseModel):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    template: Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]


@router.get("/programs", response_model=PageOf[ProgramOut], summary="List programs")
async def list_programs(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
    template: str | None = None,
) -> dict[str, Any]:
    return await page_of(
        request,
        "SELECT id, name, template, created_at FROM programs"
        " WHERE (%s::text IS NULL OR template = %s) ORDER BY id",
        [template, template],
        page,
    )


@router.post(
    "/programs", response_model=ProgramOut, status_code=201, summary="Create a program (admin)"
)
async def create_program(
    request: Request, body: ProgramIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO programs (id, name, template) VALUES (%s, %s, %s)"
            " RETURNING id, name, template, created_at",
            (body.id, body.name, body.template),
        )
        await audit(conn, principal, "create program", resource=f"program/{body.id}")
    return row
