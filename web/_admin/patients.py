"""Patients: list those of my sites (filtered by site, MRN, risk tier, program), create (admin),
read with their enrollments, change (admin)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from web._access import Detail, PatientRef, check_site_access, patient_access
from web._admin._common import ADMIN, ANY, fetch_page, one_row, sites_filter
from web._audit import audit
from web._db import Row
from web._paging import Page, page_params, paged
from web._principal import Principal
from web._schemas import PageOf, PatientDetail, PatientOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()

_PATIENT_COLS = "p.id, p.mrn, p.display_name, p.birth_date, p.site_id, p.risk_tier, p.created_at"


class PatientIn(BaseModel):
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    mrn: Annotated[str | None, Field(max_length=64)] = None
    birth_date: date | None = None
    site_id: str
    risk_tier: Annotated[int, Field(ge=1, le=3)] = 2


class PatientPatch(BaseModel):
    display_name: str | None = None
    mrn: str | None = None
    birth_date: date | None = None
    risk_tier: Annotated[int | None, Field(ge=1, le=3)] = None


async def _patch_first(body: PatientPatch) -> Detail:
    """The change is validated before the patient is loaded (and audited)."""
    return None


@router.get("/patients", response_model=PageOf[PatientOut], summary="List patients of my sites")
async def list_patients(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
    site_id: str | None = None,
    mrn: str | None = None,
    risk_tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    program_id: str | None = None,
) -> dict[str, Any]:
    sites = sites_filter(principal, site_id)
    async with app_state(request).pool.connection() as conn:
        rows, total = await fetch_page(
            conn,
            f"SELECT {_PATIENT_COLS} FROM patients p WHERE p.site_id = ANY(%s)"
            " AND (%s::text IS NULL OR p.mrn = %s) AND (%s::int IS NULL OR p.risk_tier = %s)"
            " AND (%s::text IS NULL OR EXISTS (SELECT 1 FROM enrollments e"
            "   WHERE e.patient_id = p.id AND e.program_id = %s AND e.ended_at IS NULL))"
            " ORDER BY p.display_name, p.id",
            [sites, mrn, mrn, risk_tier, risk_tier, program_id, program_id],
            page,
        )
        await audit(
            conn,
            principal,
            "list patients",
            detail={"count": len(rows), "sites": sites, "patients": [str(r["id"]) for r in rows]},
        )
    return paged(request, rows, total, page)


@router.post(
    "/patients", response_model=PatientOut, status_code=201, summary="Create a patient (admin)"
)
async def create_patient(
    request: Request, body: PatientIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    await check_site_access(request, principal, body.site_id, "create patient")
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO patients (display_name, mrn, birth_date, site_id, risk_tier)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_PATIENT_COLS.replace('p.', '')}",
            (body.display_name, body.mrn, body.birth_date, body.site_id, body.risk_tier),
        )
        await audit(conn, principal, "create patient", patient_id=row["id"], site_id=body.site_id)
    return row


@router.get("/patients/{patient_id}", response_model=PatientDetail, summary="Get a patient")
async def get_patient(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("api read patient", ANY))],
) -> Row:
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn, f"SELECT {_PATIENT_COLS} FROM patients p WHERE p.id = %s", (patient.id,)
        )
        cur = await conn.execute(
            "SELECT * FROM enrollments WHERE patient_id = %s ORDER BY enrolled_at", (patient.id,)
        )
        enrollments = await cur.fetchall()
    return {**row, "enrollments": enrollments}


@router.patch(
    "/patients/{patient_id}", response_model=PatientOut, summary="Change a patient (admin)"
)
async def patch_patient(
    request: Request,
    body: PatientPatch,
    patient: Annotated[
        PatientRef, Depends(patient_access("api change patient", ADMIN, detail=_patch_first))
    ],
) -> Row:
    async with app_state(request).pool.connection() as conn:
        return await one_row(
            conn,
            "UPDATE patients SET display_name = coalesce(%s, display_name), mrn = coalesce(%s, mrn),"
            " birth_date = coalesce(%s, birth_date), risk_tier = coalesce(%s, risk_tier)"
            f" WHERE id = %s RETURNING {_PATIENT_COLS.replace('p.', '')}",
            (body.display_name, body.mrn, body.birth_date, body.risk_tier, patient.id),
        )
