"""The admin JSON API (``/api``): sites, programs, users and tokens; patients, enrollments and
consent; devices and time-bounded assignments; gateways (provisioning creates the broker
login and returns its password once); care-management time; the audit log.

Lists are paginated (``limit``/``offset`` → ``items``/``total``/``next``) and filterable.
Errors are JSON ``{"detail": …}``: 401 unauthenticated, 403 role or site, 404 unknown id,
409 conflict (duplicate, overlapping assignment), 422 invalid input.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import uuid
import zoneinfo
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import AfterValidator, BaseModel, Field

from web._access import check_patient_access, check_site_access
from web._audit import audit
from web._auth import require
from web._care_time import insert_time_entry
from web._db import Conn, Row
from web._paging import Page, page_params, paged
from web._passwords import hash_password, new_token, token_digest
from web._principal import Principal, Role
from web._schemas import (
    AssignmentOut,
    AuditOut,
    CredentialsOut,
    DeviceOut,
    EnrollmentOut,
    GatewayOut,
    GatewayProvisioned,
    MeOut,
    PageOf,
    PatientDetail,
    PatientOut,
    ProgramOut,
    SiteOut,
    TimeEntryOut,
    TokenOut,
    UserOut,
)
from web._state import app_state

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["admin"])

ADMIN = require(Role.ADMIN)
ADMIN_OR_SUPERVISOR = require(Role.ADMIN, Role.SUPERVISOR)
CARE = require(Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR)
ANY = require()

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


# --- models ------------------------------------------------------------------------------------


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
    id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: Annotated[
        str, AfterValidator(_iana_timezone), Field(description="IANA time zone (Europe/Berlin)")
    ] = "UTC"


class ProgramIn(BaseModel):
    id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    template: Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]


class UserIn(BaseModel):
    username: Annotated[str, Field(pattern=r"^[a-z0-9._@-]{2,64}$")]
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    password: Annotated[str, Field(min_length=10, max_length=200)]
    sites: list[str] = Field(default_factory=list)


class UserPatch(BaseModel):
    display_name: str | None = None
    role: Role | None = None
    password: Annotated[str | None, Field(min_length=10, max_length=200)] = None
    sites: list[str] | None = None
    disabled: bool | None = None


class TokenIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    expires_at: datetime | None = None


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


class EnrollmentIn(BaseModel):
    program_id: str
    enrolled_at: datetime | None = None
    consent_given_at: datetime | None = None
    billing_practitioner: str | None = None


class EnrollmentPatch(BaseModel):
    consent_given_at: datetime | None = None
    consent_withdrawn_at: datetime | None = None
    ended_at: datetime | None = None
    billing_practitioner: str | None = None


class DeviceIn(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    type: Annotated[str, Field(min_length=1, max_length=64)]
    manufacturer: str | None = None
    model: str | None = None


class AssignmentIn(BaseModel):
    device_id: str
    patient_id: uuid.UUID
    user_index: Annotated[int | None, Field(ge=0, le=255)] = None
    valid_from: datetime
    valid_to: datetime | None = None


class AssignmentEnd(BaseModel):
    valid_to: datetime


class GatewayIn(BaseModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    label: str | None = None
    patient_ids: list[uuid.UUID] = Field(default_factory=list)


class GatewayPatientIn(BaseModel):
    patient_id: uuid.UUID


class TimeEntryIn(BaseModel):
    started_at: datetime
    minutes: Annotated[float, Field(gt=0, le=240)]
    interactive: bool = Field(description="included a live, real-time interactive communication")
    episode_id: uuid.UUID | None = None
    note: Annotated[str | None, Field(max_length=2000)] = None


# --- helpers -----------------------------------------------------------------------------------


def _aware(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "timestamps need a UTC offset")
    return t


async def _fetch_page(conn: Conn, sql: str, params: list[Any], page: Page) -> tuple[list[Row], int]:
    cur = await conn.execute(f"SELECT count(*) AS n FROM ({sql}) q", params)
    total_row = await cur.fetchone()
    cur = await conn.execute(sql + " LIMIT %s OFFSET %s", [*params, page.limit, page.offset])
    return await cur.fetchall(), int(total_row["n"] if total_row else 0)


def _sites_filter(principal: Principal, site_id: str | None) -> list[str]:
    if site_id is not None:
        if site_id not in principal.sites:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this site of care is not yours")
        return [site_id]
    return sorted(principal.sites)


@router.get(
    "/me",
    response_model=MeOut,
    summary="Who am I (and my CSRF token, for session-authenticated writes)",
)
async def me(principal: Annotated[Principal, Depends(ANY)]) -> dict[str, Any]:
    return {
        "id": principal.user_id,
        "username": principal.username,
        "display_name": principal.display_name,
        "role": principal.role.value,
        "sites": sorted(principal.sites),
        "via": principal.via,
        "csrf_token": principal.csrf_token,
    }


# --- sites, programs ---------------------------------------------------------------------------


@router.get("/sites", response_model=PageOf[SiteOut], summary="List my sites of care")
async def list_sites(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
            "SELECT id, name, timezone, created_at FROM sites WHERE id = ANY(%s) ORDER BY id",
            [sorted(principal.sites)],
            page,
        )
    return paged(request, rows, total, page)


@router.post(
    "/sites", response_model=SiteOut, status_code=201, summary="Create a site of care (admin)"
)
async def create_site(
    request: Request, body: SiteIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s)"
            " RETURNING id, name, timezone, created_at",
            (body.id, body.name, body.timezone),
        )
        row = await cur.fetchone()
        await conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s)",
            (principal.user_id, body.id),
        )
        await audit(conn, principal, "create site", site_id=body.id)
    assert row is not None
    return row


@router.get("/programs", response_model=PageOf[ProgramOut], summary="List programs")
async def list_programs(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
    template: str | None = None,
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
            "SELECT id, name, template, created_at FROM programs"
            " WHERE (%s::text IS NULL OR template = %s) ORDER BY id",
            [template, template],
            page,
        )
    return paged(request, rows, total, page)


@router.post(
    "/programs", response_model=ProgramOut, status_code=201, summary="Create a program (admin)"
)
async def create_program(
    request: Request, body: ProgramIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO programs (id, name, template) VALUES (%s, %s, %s)"
            " RETURNING id, name, template, created_at",
            (body.id, body.name, body.template),
        )
        row = await cur.fetchone()
        await audit(conn, principal, "create program", resource=f"program/{body.id}")
    assert row is not None
    return row


# --- users and tokens --------------------------------------------------------------------------

_USER_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.disabled, u.created_at,"
    " coalesce((SELECT array_agg(site_id ORDER BY site_id) FROM web_user_sites s"
    " WHERE s.user_id = u.id), '{}') AS sites FROM web_users u"
)


@router.get("/users", response_model=PageOf[UserOut], summary="List users of my sites (admin)")
async def list_users(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    role: Role | None = None,
    site_id: str | None = None,
) -> dict[str, Any]:
    sites = _sites_filter(principal, site_id)
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
            _USER_SQL + " WHERE (%s::text IS NULL OR u.role = %s) AND EXISTS (SELECT 1 FROM"
            " web_user_sites s WHERE s.user_id = u.id AND s.site_id = ANY(%s)) ORDER BY u.id",
            [role, role, sites],
            page,
        )
    return paged(request, rows, total, page)


async def _set_sites(conn: Conn, principal: Principal, user_id: int, sites: list[str]) -> None:
    foreign = set(sites) - principal.sites
    if foreign:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can only grant your own sites")
    await conn.execute(
        "DELETE FROM web_user_sites WHERE user_id = %s AND site_id = ANY(%s)",
        (user_id, sorted(principal.sites)),
    )
    for site in sites:
        await conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s)", (user_id, site)
        )


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user (admin)")
async def create_user(
    request: Request, body: UserIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    digest = await asyncio.to_thread(hash_password, body.password)
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO web_users (username, display_name, role, password_hash)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (body.username, body.display_name, body.role.value, digest),
        )
        row = await cur.fetchone()
        assert row is not None
        await _set_sites(conn, principal, row["id"], body.sites)
        await audit(conn, principal, "create user", resource=f"user/{row['id']}")
        cur = await conn.execute(_USER_SQL + " WHERE u.id = %s", (row["id"],))
        out = await cur.fetchone()
    assert out is not None
    return out


async def _user_in_my_sites(conn: Conn, principal: Principal, user_id: int) -> Row:
    cur = await conn.execute(_USER_SQL + " WHERE u.id = %s", (user_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    if row["sites"] and not set(row["sites"]) & principal.sites:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this user is not at one of your sites")
    return row


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user (admin)")
async def patch_user(
    request: Request,
    user_id: int,
    body: UserPatch,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> Row:
    digest = await asyncio.to_thread(hash_password, body.password) if body.password else None
    async with app_state(request).pool.connection() as conn:
        await _user_in_my_sites(conn, principal, user_id)
        await conn.execute(
            "UPDATE web_users SET display_name = coalesce(%s, display_name),"
            " role = coalesce(%s, role), password_hash = coalesce(%s, password_hash),"
            " disabled = coalesce(%s, disabled) WHERE id = %s",
            (
                body.display_name,
                body.role.value if body.role else None,
                digest,
                body.disabled,
                user_id,
            ),
        )
        if body.sites is not None:
            await _set_sites(conn, principal, user_id, body.sites)
        if body.disabled or body.password or body.role:
            await conn.execute("DELETE FROM web_sessions WHERE user_id = %s", (user_id,))
        await audit(conn, principal, "change user", resource=f"user/{user_id}")
        return await _user_in_my_sites(conn, principal, user_id)


@router.post(
    "/users/{user_id}/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Create an API token",
)
async def create_token(
    request: Request,
    user_id: int,
    body: TokenIn,
    principal: Annotated[Principal, Depends(ANY)],
) -> dict[str, Any]:
    """The token is returned once; only its SHA-256 is stored. Admins may create tokens for
    users of their sites, others only for themselves."""
    if principal.role != Role.ADMIN and user_id != principal.user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can only create your own tokens")
    token = new_token("cbt_")
    async with app_state(request).pool.connection() as conn:
        await _user_in_my_sites(conn, principal, user_id)
        cur = await conn.execute(
            "INSERT INTO web_api_tokens (user_id, name, token_hash, expires_at)"
            " VALUES (%s, %s, %s, %s) RETURNING id, name, created_at, expires_at",
            (user_id, body.name, token_digest(token), _aware(body.expires_at)),
        )
        row = await cur.fetchone()
        await audit(conn, principal, "create api token", resource=f"user/{user_id}")
    assert row is not None
    return {**row, "token": token}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(
    request: Request, token_id: int, principal: Annotated[Principal, Depends(ANY)]
) -> None:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT user_id FROM web_api_tokens WHERE id = %s", (token_id,))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
        if principal.role != Role.ADMIN and row["user_id"] != principal.user_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not your token")
        if principal.role == Role.ADMIN:
            await _user_in_my_sites(conn, principal, row["user_id"])
        await conn.execute(
            "UPDATE web_api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (token_id,),
        )
        await audit(conn, principal, "revoke api token", resource=f"token/{token_id}")


# --- patients and enrollments ------------------------------------------------------------------

_PATIENT_COLS = "p.id, p.mrn, p.display_name, p.birth_date, p.site_id, p.risk_tier, p.created_at"


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
    sites = _sites_filter(principal, site_id)
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
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
        cur = await conn.execute(
            "INSERT INTO patients (display_name, mrn, birth_date, site_id, risk_tier)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_PATIENT_COLS.replace('p.', '')}",
            (body.display_name, body.mrn, body.birth_date, body.site_id, body.risk_tier),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit(conn, principal, "create patient", patient_id=row["id"], site_id=body.site_id)
    return row


@router.get("/patients/{patient_id}", response_model=PatientDetail, summary="Get a patient")
async def get_patient(
    request: Request, patient_id: uuid.UUID, principal: Annotated[Principal, Depends(ANY)]
) -> Row:
    await check_patient_access(request, principal, patient_id, "api read patient")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_PATIENT_COLS} FROM patients p WHERE p.id = %s", (patient_id,)
        )
        row = await cur.fetchone()
        cur = await conn.execute(
            "SELECT * FROM enrollments WHERE patient_id = %s ORDER BY enrolled_at", (patient_id,)
        )
        enrollments = await cur.fetchall()
    assert row is not None
    return {**row, "enrollments": enrollments}


@router.patch(
    "/patients/{patient_id}", response_model=PatientOut, summary="Change a patient (admin)"
)
async def patch_patient(
    request: Request,
    patient_id: uuid.UUID,
    body: PatientPatch,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> Row:
    await check_patient_access(request, principal, patient_id, "api change patient")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE patients SET display_name = coalesce(%s, display_name), mrn = coalesce(%s, mrn),"
            " birth_date = coalesce(%s, birth_date), risk_tier = coalesce(%s, risk_tier)"
            f" WHERE id = %s RETURNING {_PATIENT_COLS.replace('p.', '')}",
            (body.display_name, body.mrn, body.birth_date, body.risk_tier, patient_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


@router.post(
    "/patients/{patient_id}/enrollments",
    response_model=EnrollmentOut,
    status_code=201,
    summary="Enroll a patient in a program",
)
async def create_enrollment(
    request: Request,
    patient_id: uuid.UUID,
    body: EnrollmentIn,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> Row:
    ref = await check_patient_access(request, principal, patient_id, "api enroll patient")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
            " consent_given_at, billing_practitioner) VALUES (%s, %s, %s, coalesce(%s, now()),"
            " %s, %s) RETURNING *",
            (
                patient_id,
                body.program_id,
                ref.site_id,
                _aware(body.enrolled_at),
                _aware(body.consent_given_at),
                body.billing_practitioner,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


@router.patch(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    summary="Record consent, withdrawal, end, practitioner",
)
async def patch_enrollment(
    request: Request,
    enrollment_id: int,
    body: EnrollmentPatch,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> Row:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT patient_id FROM enrollments WHERE id = %s", (enrollment_id,)
        )
        found = await cur.fetchone()
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such enrollment")
    await check_patient_access(
        request,
        principal,
        found["patient_id"],
        "api change enrollment",
        detail={"fields": sorted(body.model_fields_set)},
    )
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE enrollments SET consent_given_at = coalesce(%s, consent_given_at),"
            " consent_withdrawn_at = coalesce(%s, consent_withdrawn_at),"
            " ended_at = coalesce(%s, ended_at),"
            " billing_practitioner = coalesce(%s, billing_practitioner)"
            " WHERE id = %s RETURNING *",
            (
                _aware(body.consent_given_at),
                _aware(body.consent_withdrawn_at),
                _aware(body.ended_at),
                body.billing_practitioner,
                enrollment_id,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


# --- devices and assignments -------------------------------------------------------------------


@router.get("/devices", response_model=PageOf[DeviceOut], summary="List devices (admin)")
async def list_devices(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    type: str | None = None,
    unassigned: bool = False,
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
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
    return paged(request, rows, total, page)


@router.post(
    "/devices", response_model=DeviceOut, status_code=201, summary="Register a device (admin)"
)
async def create_device(
    request: Request, body: DeviceIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO devices (id, type, manufacturer, model) VALUES (%s, %s, %s, %s)"
            " RETURNING id, type, manufacturer, model, created_at",
            (body.id, body.type, body.manufacturer, body.model),
        )
        row = await cur.fetchone()
        await audit(conn, principal, "create device", resource=f"device/{body.id}")
    assert row is not None
    return row


@router.get(
    "/patients/{patient_id}/assignments",
    response_model=PageOf[AssignmentOut],
    summary="A patient's device assignments",
)
async def list_assignments(
    request: Request, patient_id: uuid.UUID, principal: Annotated[Principal, Depends(ANY)]
) -> dict[str, Any]:
    await check_patient_access(request, principal, patient_id, "api list assignments")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM device_assignments WHERE patient_id = %s ORDER BY valid_from",
            (patient_id,),
        )
        rows = await cur.fetchall()
    return {"items": rows, "total": len(rows), "limit": len(rows), "offset": 0, "next": None}


@router.post(
    "/assignments",
    response_model=AssignmentOut,
    status_code=201,
    summary="Assign a device to a patient for a time",
)
async def create_assignment(
    request: Request, body: AssignmentIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    await check_patient_access(request, principal, body.patient_id, "api assign device")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO device_assignments (device_id, patient_id, user_index, valid_from,"
            " valid_to) VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (
                body.device_id,
                body.patient_id,
                body.user_index,
                _aware(body.valid_from),
                _aware(body.valid_to),
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


@router.post(
    "/assignments/{assignment_id}/end",
    response_model=AssignmentOut,
    summary="End a device assignment",
)
async def end_assignment(
    request: Request,
    assignment_id: int,
    body: AssignmentEnd,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> Row:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT patient_id FROM device_assignments WHERE id = %s", (assignment_id,)
        )
        found = await cur.fetchone()
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such assignment")
    await check_patient_access(request, principal, found["patient_id"], "api end assignment")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE device_assignments SET valid_to = %s WHERE id = %s RETURNING *",
            (_aware(body.valid_to), assignment_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


# --- gateways ----------------------------------------------------------------------------------


@router.get("/gateways", response_model=PageOf[GatewayOut], summary="List gateways (admin)")
async def list_gateways(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    online: bool | None = None,
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
            "SELECT g.id, g.label, g.online, g.status_at, g.created_at,"
            " g.status ->> 'software_version' AS software_version,"
            " (SELECT count(*) FROM gateway_patients gp WHERE gp.gateway_id = g.id) AS patients"
            " FROM gateways g WHERE (%s::bool IS NULL OR g.online = %s)"
            " AND (NOT EXISTS (SELECT 1 FROM gateway_patients gp WHERE gp.gateway_id = g.id)"
            "  OR EXISTS (SELECT 1 FROM gateway_patients gp JOIN patients p ON p.id = gp.patient_id"
            "   WHERE gp.gateway_id = g.id AND p.site_id = ANY(%s))) ORDER BY g.id",
            [online, online, sorted(principal.sites)],
            page,
        )
    return paged(request, rows, total, page)


async def _gateway_in_my_sites(
    request: Request, conn: Conn, principal: Principal, gateway_id: str, action: str
) -> None:
    """404 for an unknown gateway; 403 (audited) for one serving patients of other sites only."""
    cur = await conn.execute(
        "SELECT g.id, array_remove(array_agg(DISTINCT p.site_id), NULL) AS sites"
        " FROM gateways g LEFT JOIN gateway_patients gp ON gp.gateway_id = g.id"
        " LEFT JOIN patients p ON p.id = gp.patient_id WHERE g.id = %s GROUP BY g.id",
        (gateway_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gateway")
    if row["sites"] and not set(row["sites"]) & principal.sites:
        await audit(conn, principal, action, outcome="denied", resource=f"gateway/{gateway_id}")
        await conn.commit()
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this gateway serves other sites")


async def _provision(request: Request, gateway_id: str) -> str:
    password = secrets.token_urlsafe(24)
    await asyncio.to_thread(app_state(request).provision_gateway, gateway_id, password)
    return password


@router.post(
    "/gateways",
    response_model=GatewayProvisioned,
    status_code=201,
    summary="Provision a gateway (creates its MQTT login)",
)
async def create_gateway(
    request: Request, body: GatewayIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> dict[str, Any]:
    """Returns the generated MQTT password once; it is not stored anywhere readable."""
    for pid in body.patient_ids:
        await check_patient_access(request, principal, pid, "api provision gateway")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO gateways (id, label) VALUES (%s, %s) RETURNING id, label, created_at",
            (body.id, body.label),
        )
        row = await cur.fetchone()
        for pid in body.patient_ids:
            await conn.execute(
                "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
                (body.id, pid),
            )
        password = await _provision(request, body.id)
        await audit(conn, principal, "provision gateway", resource=f"gateway/{body.id}")
    assert row is not None
    logger.info("gateway provisioned")
    return {
        **row,
        "patient_ids": body.patient_ids,
        "mqtt_username": body.id,
        "mqtt_password": password,
    }


@router.post(
    "/gateways/{gateway_id}/credentials",
    response_model=CredentialsOut,
    summary="Rotate a gateway's MQTT password",
)
async def rotate_gateway(
    request: Request, gateway_id: str, principal: Annotated[Principal, Depends(ADMIN)]
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        await _gateway_in_my_sites(
            request, conn, principal, gateway_id, "rotate gateway credentials"
        )
        password = await _provision(request, gateway_id)
        await audit(conn, principal, "rotate gateway credentials", resource=f"gateway/{gateway_id}")
    return {"mqtt_username": gateway_id, "mqtt_password": password}


@router.post(
    "/gateways/{gateway_id}/patients", status_code=201, summary="Let a gateway serve a patient"
)
async def add_gateway_patient(
    request: Request,
    gateway_id: str,
    body: GatewayPatientIn,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> dict[str, Any]:
    await check_patient_access(request, principal, body.patient_id, "api gateway add patient")
    async with app_state(request).pool.connection() as conn:
        await _gateway_in_my_sites(request, conn, principal, gateway_id, "gateway add patient")
        await conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (gateway_id, body.patient_id),
        )
    return {"gateway_id": gateway_id, "patient_id": body.patient_id}


# --- care-management time ----------------------------------------------------------------------


@router.post(
    "/patients/{patient_id}/time-entries",
    response_model=TimeEntryOut,
    status_code=201,
    summary="Log care-management time",
)
async def log_time(
    request: Request,
    patient_id: uuid.UUID,
    body: TimeEntryIn,
    principal: Annotated[Principal, Depends(CARE)],
) -> Row:
    await check_patient_access(request, principal, patient_id, "log care time")
    started = _aware(body.started_at)
    if started is not None and started > datetime.now(UTC):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "time cannot be logged ahead")
    async with app_state(request).pool.connection() as conn:
        row = await insert_time_entry(
            conn,
            patient_id=patient_id,
            user_id=principal.user_id,
            started_at=started or datetime.now(UTC),
            minutes=body.minutes,
            interactive=body.interactive,
            episode_id=body.episode_id,
            note=body.note,
        )
    return row


@router.get(
    "/patients/{patient_id}/time-entries",
    response_model=PageOf[TimeEntryOut],
    summary="A patient's care-management time",
)
async def list_time(
    request: Request,
    patient_id: uuid.UUID,
    principal: Annotated[Principal, Depends(ANY)],
    page: Annotated[Page, Depends(page_params)],
) -> dict[str, Any]:
    await check_patient_access(request, principal, patient_id, "api list care time")
    async with app_state(request).pool.connection() as conn:
        rows, total = await _fetch_page(
            conn,
            "SELECT t.id, t.started_at, t.seconds, t.interactive, t.episode_id, t.note,"
            " u.username FROM care_time_entries t JOIN web_users u ON u.id = t.user_id"
            " WHERE t.patient_id = %s ORDER BY t.started_at DESC, t.id DESC",
            [patient_id],
            page,
        )
    return paged(request, rows, total, page)


# --- audit -------------------------------------------------------------------------------------


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
        rows, total = await _fetch_page(
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
