"""Devices (admin): list those unassigned or assigned at my sites, register one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from web._admin._common import ADMIN, one_row, page_of
from web._audit import audit
from web._db import Row
from web._paging import Page, page_params
from web._principal import Principal
from web._schemas import DeviceOut, PageOf
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class DeviceIn(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    type: Annotated[str, Field(min_length=1, max_length=64)]
    manufacturer: str | None = None
    model: str | None = None


@router.get("/devices", response_model=PageOf[DeviceOut], summary="List devices (admin)")
async def list_devices(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    type: str | None = None,
    unassigned: bool = False,
) -> dict[str, Any]:
    return await page_of(
        request,
        "SELECT d.id, d.type, d.manufacturer, d.model, d.created_at FROM devices d"
        " WHERE (%s::text IS NULL OR d.type = %s) AND (NOT %s OR NOT EXISTS (SELECT 1 FROM"
        "  device_assignments a WHERE a.device_id = d.id AND a.valid_to IS NULL))"
        " AND (NOT EXISTS (SELECT 1 FROM device_assignments a WHERE a.device_id = d.id)"
        "  OR EXISTS (SELECT 1 FROM device_assignments a JOIN patients p ON p.id = a.patient_id"
        "   WHERE a.device_id = d.id AND p.site_id = ANY(%s)))"
        " ORDER BY d.id",
        [type, type, unassigned, sorted(principal.sites)],
        page,
    )


@router.post(
    "/devices", response_model=DeviceOut, status_code=201, summary="Register a device (admin)"
)
async def create_device(
    request: Request, body: DeviceIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO devices (id, type, manufacturer, model) VALUES (%s, %s, %s, %s)"
            " RETURNING id, type, manufacturer, model, created_at",
            (body.id, body.type, body.manufacturer, body.model),
        )
        await audit(conn, principal, "create device", resource=f"device/{body.id}")
    return row
